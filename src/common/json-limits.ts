export interface JsonLimits {
  maxDepth: number;
  maxKeys: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/**
 * Why a JSON text exceeds the limits, or null. A single pass over the raw text, before
 * JSON.parse: a body nested thousands of levels deep would otherwise reach the DTO
 * transformation, which recurses and overflows the stack (a 500), and millions of keys
 * would cost validation time. Malformed JSON is left to the parser to report.
 */
export function jsonLimitViolation(text: string, limits: JsonLimits): string | null {
  let depth = 0;
  let keys = 0;
  // Regular expressions find the next character that matters in native code: a body
  // is mostly numbers and commas (a batch of embeddings is 3 MB of them), which a
  // character loop in JavaScript walked one by one.
  const structural = /["{}[\]:]/g;
  const inString = /["\\]/g;
  let m: RegExpExecArray | null;
  while ((m = structural.exec(text)) !== null) {
    switch (text.charCodeAt(m.index)) {
      case QUOTE: {
        // skip to the closing quote, past escaped characters
        inString.lastIndex = m.index + 1;
        let end: RegExpExecArray | null;
        while ((end = inString.exec(text)) !== null && text.charCodeAt(end.index) === BACKSLASH) {
          inString.lastIndex = end.index + 2;
        }
        if (end === null) {
          return null; // unterminated: the parser reports it
        }
        structural.lastIndex = end.index + 1;
        break;
      }
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        depth++;
        if (depth > limits.maxDepth) {
          return `body: nested deeper than ${limits.maxDepth} levels`;
        }
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        depth--;
        break;
      case COLON:
        // outside a string a colon separates an object key from its value
        keys++;
        if (keys > limits.maxKeys) {
          return `body: more than ${limits.maxKeys} object keys`;
        }
        break;
    }
  }
  return null;
}
