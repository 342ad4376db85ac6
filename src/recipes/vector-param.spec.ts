import { vectorFromBinary, vectorParam } from './vector-param.js';

describe(vectorParam.name, () => {
  it("encodes pgvector's binary format: dimensions, a zero, big-endian float4s", () => {
    const buf = vectorParam([0.5, -2, 1 / 3]);
    expect(buf.length).toBe(4 + 3 * 4);
    expect(buf.readUInt16BE(0)).toBe(3);
    expect(buf.readUInt16BE(2)).toBe(0);
    expect([buf.readFloatBE(4), buf.readFloatBE(8), buf.readFloatBE(12)]).toEqual([
      0.5,
      -2,
      Math.fround(1 / 3),
    ]);
  });
});

describe(vectorFromBinary.name, () => {
  it('reads back what vectorParam wrote (vector_send has the same layout)', () => {
    expect(Array.from(vectorFromBinary(vectorParam([0.5, -2, 1 / 3])))).toEqual([
      0.5,
      -2,
      Math.fround(1 / 3),
    ]);
  });
});
