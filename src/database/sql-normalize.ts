const MAX_STATEMENT = 1_000;

/**
 * A statement's text with no value left in it: bound parameters are already `$n`;
 * literals written into the text (quoted, dollar-quoted and escape strings, numbers)
 * become `?`, comments go (they may quote values too), whitespace is collapsed and the
 * result is cut at 1,000 characters. Identifiers (`"t1"`, `col2`) and `$n` stay.
 */
export function normalizeStatement(sql: string): string {
  const out: string[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      out.push(' ');
    } else if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
      out.push(' ');
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'" && !wordBefore(sql, i))) {
      i = skipQuoted(sql, c === "'" ? i : i + 1, "'", c !== "'");
      out.push('?');
    } else if (c === '"') {
      const end = skipQuoted(sql, i, '"');
      out.push(sql.slice(i, end));
      i = end;
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? sql.length : close + tag[0].length;
        out.push('?');
      } else {
        // $n placeholder: keep it whole (its digits are not a literal).
        const m = /^\$\d+/.exec(sql.slice(i));
        out.push(m ? m[0] : c);
        i += m ? m[0].length : 1;
      }
    } else if (isDigit(c) || (c === '.' && isDigit(next))) {
      if (wordBefore(sql, i)) {
        out.push(c);
        i += 1;
      } else {
        const m = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i.exec(sql.slice(i));
        i += m ? m[0].length : 1;
        out.push('?');
      }
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(sql.slice(i));
      out.push(m![0]);
      i += m![0].length;
    } else {
      out.push(c);
      i += 1;
    }
  }
  const flat = out.join('').replace(/\s+/g, ' ').trim();
  return flat.length > MAX_STATEMENT ? `${flat.slice(0, MAX_STATEMENT)}…` : flat;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function wordBefore(sql: string, i: number): boolean {
  return i > 0 && /[A-Za-z0-9_$]/.test(sql[i - 1]);
}

/**
 * End of a quoted run starting at `i` (`quote` is ' for strings, " for identifiers): a
 * doubled quote stands for one; E'' strings also take \\' (`backslashEscapes`).
 */
function skipQuoted(sql: string, i: number, quote: "'" | '"', backslashEscapes = false): number {
  let j = i + 1;
  while (j < sql.length) {
    if (backslashEscapes && sql[j] === '\\') {
      j += 2;
    } else if (sql[j] === quote) {
      if (sql[j + 1] === quote) {
        j += 2;
      } else {
        return j + 1;
      }
    } else {
      j += 1;
    }
  }
  return sql.length;
}
