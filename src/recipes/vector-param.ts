/**
 * An embedding as a bound parameter in pgvector's binary format: uint16 dimensions,
 * uint16 unused, then each element as a big-endian float4 (vector_recv). node-postgres
 * sends a Buffer parameter in binary format, so neither side formats or parses 1,536
 * decimal numbers, and the Bind message is 6 KiB instead of about 20. The values are
 * rounded to float4 here, as the text form is on the server.
 */
export function vectorParam(embedding: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(4 + 4 * embedding.length);
  buf.writeUInt16BE(embedding.length, 0);
  buf.writeUInt16BE(0, 2);
  for (let i = 0; i < embedding.length; i++) {
    buf.writeFloatBE(embedding[i], 4 + 4 * i);
  }
  return buf;
}

/** The other way (vector_send's bytea): the elements as float32. */
export function vectorFromBinary(buf: Buffer): Float32Array {
  const dims = buf.readUInt16BE(0);
  const out = new Float32Array(dims);
  for (let i = 0; i < dims; i++) {
    out[i] = buf.readFloatBE(4 + 4 * i);
  }
  return out;
}
