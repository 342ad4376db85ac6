import { invalidRequest } from './errors.js';

/** Opaque keyset cursor: base64url of the last row's sort key. */
export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify({ c: createdAt, i: id }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      c?: unknown;
      i?: unknown;
    };
    if (
      typeof parsed.c === 'string' &&
      typeof parsed.i === 'string' &&
      /^[0-9a-f-]{36}$/.test(parsed.i) &&
      /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2})?|Z)?$/.test(parsed.c)
    ) {
      return { createdAt: parsed.c, id: parsed.i };
    }
  } catch {
    // falls through to the 400 below: any undecodable cursor is the caller's error
  }
  throw invalidRequest({ field: 'cursor', message: 'cursor is not a cursor this API issued' });
}

/** Opaque cursor over a sequence (an identity column): base64url of the last row's number. */
export function encodeSeqCursor(seq: number | string): string {
  return Buffer.from(JSON.stringify({ s: String(seq) }), 'utf8').toString('base64url');
}

/** The sequence number after which the next page starts; 400 for anything else. */
export function decodeSeqCursor(cursor: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      s?: unknown;
    };
    if (typeof parsed.s === 'string' && /^\d{1,15}$/.test(parsed.s)) {
      return Number(parsed.s);
    }
  } catch {
    // falls through to the 400 below
  }
  throw invalidRequest({ field: 'cursor', message: 'cursor is not a cursor this API issued' });
}
