import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { KEYS } from './support/app.js';
import { REPO_ROOT } from './support/stack.js';

/**
 * Run by scripts/test.sh after the whole suite (jest project `final`): no secret of any
 * stack the suite made (the shared one and the throwaway ones under .stack/) and no test
 * API key appears in any log the suite wrote: the nodes' logs, the scratch instances'
 * logs and the suite's own output (.stack/logs/test-run*.log, every service log line of
 * the run).
 */
const STACK = join(REPO_ROOT, '.stack');
const MAX_BYTES = 256 * 1024 * 1024;

/** Every file under `dir` whose name ends with .log or is `log`, data folders included. */
function logFiles(dir: string, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!['base', 'global', 'pg_wal', 'backup-repo', 'node_modules'].includes(entry.name)) {
        logFiles(path, found);
      }
    } else if (entry.isFile() && (entry.name.endsWith('.log') || entry.name === 'log')) {
      found.push(path);
    }
  }
  return found;
}

/** Every generated password of every stack under .stack/ (`secrets/*`, the pgBackRest passphrase). */
function stackSecrets(dir: string, found = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === 'secrets') {
        for (const f of readdirSync(path)) {
          found.set(readFileSync(join(path, f), 'utf8').trim(), relative(STACK, join(path, f)));
        }
      } else if (
        !['base', 'global', 'pg_wal', 'backup-repo', 'primary', 'replica'].includes(entry.name)
      ) {
        stackSecrets(path, found);
      }
    } else if (entry.name === 'cipher-pass') {
      found.set(readFileSync(path, 'utf8').trim(), relative(STACK, path));
    }
  }
  return found;
}

describe('secrets in logs (after the whole suite)', () => {
  it('no generated password and no API key shows in any log the suite wrote', () => {
    expect(existsSync(STACK)).toBe(true);
    const secrets = stackSecrets(STACK);
    for (const key of Object.values(KEYS)) {
      secrets.set(key, `test API key ${key.slice(0, 9)}…`);
    }
    // the shared stack's six passwords at least, and the suite's output was kept
    expect(secrets.size).toBeGreaterThanOrEqual(6 + Object.keys(KEYS).length);
    const logs = logFiles(STACK);
    expect(logs.map((f) => relative(STACK, f))).toContain(join('logs', 'test-run.log'));
    const leaks: string[] = [];
    let scanned = 0;
    for (const file of logs) {
      if (statSync(file).size > MAX_BYTES) {
        continue;
      }
      const text = readFileSync(file, 'latin1');
      scanned += text.length;
      for (const [secret, name] of secrets) {
        if (secret.length >= 8 && text.includes(secret)) {
          leaks.push(`${name} in ${relative(STACK, file)}`);
        }
      }
    }
    expect(scanned).toBeGreaterThan(0);
    expect(leaks).toEqual([]);
  });
});
