import type { RecipeRow } from './dataset.js';

/**
 * COPY ... (FORMAT binary) encoding of `recipes` rows: binary COPY skips parsing
 * 1536 floats from text per row on the server, the slowest part of a text load.
 */
export const COPY_COLUMNS = [
  'id',
  'title',
  'description',
  'ingredients',
  'steps',
  'cuisine',
  'tags',
  'dietary',
  'total_minutes',
  'author_id',
  'embedding',
] as const;

const TEXT_OID = 25;

export const COPY_HEADER = Buffer.concat([
  Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
  Buffer.alloc(8), // flags, header extension length
]);

export const COPY_TRAILER = Buffer.from([0xff, 0xff]);

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

function textArrayBytes(items: readonly string[]): Buffer {
  if (items.length === 0) {
    const b = Buffer.alloc(12);
    b.writeInt32BE(TEXT_OID, 8);
    return b;
  }
  const elems = items.map((s) => Buffer.from(s, 'utf8'));
  const size = 20 + elems.reduce((n, e) => n + 4 + e.length, 0);
  const b = Buffer.alloc(size);
  b.writeInt32BE(1, 0); // ndim
  b.writeInt32BE(0, 4); // has nulls
  b.writeInt32BE(TEXT_OID, 8);
  b.writeInt32BE(items.length, 12);
  b.writeInt32BE(1, 16); // lower bound
  let off = 20;
  for (const e of elems) {
    b.writeInt32BE(e.length, off);
    e.copy(b, off + 4);
    off += 4 + e.length;
  }
  return b;
}

/** pgvector's binary form: int16 dim, int16 unused (0), dim float4 (big-endian). */
function vectorBytes(v: Float32Array): Buffer {
  const b = Buffer.alloc(4 + 4 * v.length);
  b.writeInt16BE(v.length, 0);
  for (let i = 0; i < v.length; i++) {
    b.writeFloatBE(v[i], 4 + 4 * i);
  }
  return b;
}

function int4Bytes(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** One tuple: int16 field count, then (int32 length, bytes) per field. */
export function encodeRow(row: RecipeRow, embedding: Float32Array): Buffer {
  const fields = [
    uuidBytes(row.id),
    Buffer.from(row.title, 'utf8'),
    Buffer.from(row.description, 'utf8'),
    textArrayBytes(row.ingredients),
    textArrayBytes(row.steps),
    Buffer.from(row.cuisine, 'utf8'),
    textArrayBytes(row.tags),
    textArrayBytes(row.dietary),
    int4Bytes(row.totalMinutes),
    uuidBytes(row.authorId),
    vectorBytes(embedding),
  ];
  const size = 2 + fields.reduce((n, f) => n + 4 + f.length, 0);
  const out = Buffer.alloc(size);
  out.writeInt16BE(fields.length, 0);
  let off = 2;
  for (const f of fields) {
    out.writeInt32BE(f.length, off);
    f.copy(out, off + 4);
    off += 4 + f.length;
  }
  return out;
}
