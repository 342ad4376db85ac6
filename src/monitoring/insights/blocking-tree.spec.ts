import { blockingTrees, SessionInfo } from './blocking-tree.js';

function s(pid: number, blockedBy: number[] = []): SessionInfo {
  return {
    pid,
    blockedBy,
    usename: 'app',
    applicationName: `app-${pid}`,
    clientAddr: null,
    state: blockedBy.length > 0 ? 'active' : 'idle in transaction',
    waitEventType: blockedBy.length > 0 ? 'Lock' : 'Client',
    waitEvent: blockedBy.length > 0 ? 'transactionid' : 'ClientRead',
    queryId: null,
    query: null,
    xactStart: null,
    stateChange: null,
    waitingFor: null,
  };
}

/** pid trees only, for readable expectations. */
type Shape = { pid: number; blocking: Shape[]; cycle?: true; outsideView?: true };
function shape(nodes: ReturnType<typeof blockingTrees>): Shape[] {
  return nodes.map((n) => ({
    pid: n.pid,
    blocking: shape(n.blocking),
    ...(n.cycle ? { cycle: true as const } : {}),
    ...(n.outsideView ? { outsideView: true as const } : {}),
  }));
}

describe(blockingTrees.name, () => {
  it('is empty when nobody waits', () => {
    expect(blockingTrees([s(1), s(2)])).toEqual([]);
  });

  it('nests waiters under their blocker, chains included', () => {
    // 1 blocks 2 and 3; 3 blocks 4.
    const trees = blockingTrees([s(1), s(2, [1]), s(3, [1]), s(4, [3])]);
    expect(shape(trees)).toEqual([
      {
        pid: 1,
        blocking: [
          { pid: 2, blocking: [] },
          { pid: 3, blocking: [{ pid: 4, blocking: [] }] },
        ],
      },
    ]);
    expect(trees[0]).toMatchObject({ applicationName: 'app-1', state: 'idle in transaction' });
  });

  it('shows a session blocked by two others under each of them', () => {
    expect(shape(blockingTrees([s(1), s(2), s(3, [1, 2])]))).toEqual([
      { pid: 1, blocking: [{ pid: 3, blocking: [] }] },
      { pid: 2, blocking: [{ pid: 3, blocking: [] }] },
    ]);
  });

  it('keeps a blocker outside the view as a pid-only root', () => {
    expect(shape(blockingTrees([s(5, [99])]))).toEqual([
      { pid: 99, outsideView: true, blocking: [{ pid: 5, blocking: [] }] },
    ]);
  });

  it('stops a lock cycle where it closes', () => {
    expect(shape(blockingTrees([s(1, [2]), s(2, [1])]))).toEqual([
      { pid: 1, blocking: [{ pid: 2, blocking: [{ pid: 1, blocking: [], cycle: true }] }] },
    ]);
  });
});
