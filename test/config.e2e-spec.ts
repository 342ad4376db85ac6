import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './support/stack.js';

const MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

describe('configuration validated at boot', () => {
  it('exits non-zero naming every invalid variable, without echoing values', () => {
    expect(existsSync(MAIN)).toBe(true); // scripts/test.sh builds before running jest
    const res = spawnSync(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH,
        DB_POOL_MAX: '-1',
        REDIS_URL: 'not a url',
        DB_NODES: 'nohostport',
        API_KEYS: '[{"id":"x","hash":"secret-looking-value","scopes":[]}]',
        PORT: '70000',
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(res.status).toBe(1);
    for (const name of ['DB_POOL_MAX', 'REDIS_URL', 'DB_NODES', 'API_KEYS', 'PORT']) {
      expect(res.stderr).toContain(name);
    }
    expect(res.stderr).not.toContain('secret-looking-value');
  });
});
