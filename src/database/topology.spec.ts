import { chooseWriter, lsnToBigInt, NodeProbe } from './topology.js';

function probe(
  name: string,
  role: NodeProbe['role'],
  timeline: number | null,
  reachable = true,
): NodeProbe {
  return {
    name,
    address: { host: name, port: 5432 },
    reachable,
    role,
    timeline,
    lsn: null,
    replayLagSeconds: null,
    latencyMs: 1,
  };
}

describe(chooseWriter.name, () => {
  it('picks the non-recovery node', () => {
    const { writer, fenced } = chooseWriter([probe('a', 'replica', 1), probe('b', 'primary', 1)]);
    expect(writer?.name).toBe('b');
    expect(fenced).toEqual([]);
  });

  it('picks the highest timeline and fences an old primary that came back', () => {
    const { writer, fenced } = chooseWriter([
      probe('old', 'primary', 1),
      probe('new', 'primary', 2),
      probe('r', 'replica', 2),
    ]);
    expect(writer?.name).toBe('new');
    expect(fenced.map((f) => f.name)).toEqual(['old']);
  });

  it('has no writer when no primary is reachable', () => {
    expect(
      chooseWriter([probe('a', 'unknown', null, false), probe('b', 'replica', 1)]).writer,
    ).toBeNull();
  });
});

describe(lsnToBigInt.name, () => {
  it.each([
    ['0/0', 0n],
    ['0/16B3748', 0x16b3748n],
    ['16/B374D848', (0x16n << 32n) + 0xb374d848n],
  ])('parses %s', (lsn, expected) => {
    expect(lsnToBigInt(lsn)).toBe(expected);
  });

  it('orders LSNs across the 32-bit boundary', () => {
    expect(lsnToBigInt('1/0') > lsnToBigInt('0/FFFFFFFF')).toBe(true);
  });
});
