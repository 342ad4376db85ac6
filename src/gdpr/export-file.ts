import { strToU8, zipSync } from 'fflate';

export type ExportData = Record<string, Array<Record<string, unknown>>>;

export interface ExportHeader {
  format: 'dbu-export/1';
  exportId: string;
  userId: string;
  generatedAt: string;
}

/** One JSON document: the header and every data kind, each a list of records. */
export function renderJson(header: ExportHeader, data: ExportData): Buffer {
  return Buffer.from(JSON.stringify({ ...header, data }, null, 2), 'utf8');
}

/**
 * A zip with one CSV per data kind (`<kind>.csv`: a header row of the union of the
 * records' keys; nested values as JSON text; RFC 4180 quoting) and `manifest.json`
 * (the header, the files and their row counts).
 */
export function renderCsvZip(header: ExportHeader, data: ExportData): Buffer {
  const files: Record<string, Uint8Array> = {};
  const manifest: Array<{ file: string; kind: string; rows: number }> = [];
  for (const [kind, rows] of Object.entries(data)) {
    const file = `${kind}.csv`;
    files[file] = strToU8(toCsv(rows));
    manifest.push({ file, kind, rows: rows.length });
  }
  files['manifest.json'] = strToU8(JSON.stringify({ ...header, files: manifest }, null, 2));
  return Buffer.from(zipSync(files, { level: 6, mtime: new Date(header.generatedAt) }));
}

export function toCsv(rows: Array<Record<string, unknown>>): string {
  const columns: string[] = [];
  for (const row of rows) {
    for (const key of Object.keys(row)) {
      if (!columns.includes(key)) {
        columns.push(key);
      }
    }
  }
  const lines = [columns.map(csvCell).join(',')];
  for (const row of rows) {
    lines.push(columns.map((c) => csvCell(row[c])).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
