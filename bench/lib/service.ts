import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { round, summarize } from './stats.js';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux we run) */
const CLOCK_TICKS = 100;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface HttpResponse {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** Keep-alive HTTP client: at most `sockets` connections, reused between requests. */
export class HttpClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly host: string,
    private readonly port: number,
    sockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  }

  request(
    method: string,
    path: string,
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: body
            ? {
                'content-type': 'application/json',
                'content-length': String(body.length),
                ...headers,
              }
            : headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              headers: res.headers,
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Key material for the service under benchmark. `NODE_ENV=production` requires an explicit
 * PII hash key, and a bench must not depend on (or create) the developer's key file. Fixed
 * values (or the caller's KMS_LOCAL_KEYS / PII_HASH_KEY), so that data loaded by one run stays
 * readable by the next; bench databases only.
 */
export const BENCH_CRYPTO_ENV: Record<string, string> = {
  KMS_PROVIDER: 'local',
  KMS_LOCAL_KEYS:
    process.env.KMS_LOCAL_KEYS ??
    `v1:${createHash('sha256').update('dbu-bench-master-key-v1').digest('base64')}`,
  PII_HASH_KEY:
    process.env.PII_HASH_KEY ??
    createHash('sha256').update('dbu-bench-pii-hash-key').digest('base64'),
};

/** The built service (`node dist/src/main.js`) as a child process. */
export class ServiceProcess {
  private readonly tail: string[] = [];
  private exited: { code: number | null; signal: string | null } | null = null;
  private readonly exitPromise: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) {
          this.tail.push(line);
        }
      }
      this.tail.splice(0, Math.max(0, this.tail.length - 60));
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve();
      });
    });
  }

  /** `script`: another entry point than the service (e.g. the bare route of bench:cache) */
  static start(
    repoDir: string,
    env: Record<string, string>,
    port: number,
    script = 'dist/src/main.js',
    extraNodeArgs: string[] = [],
  ): ServiceProcess {
    // e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof': profile the service under the bench's load
    const nodeArgs = [
      ...(process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
      ...extraNodeArgs,
    ];
    // e.g. '1': the service on CPU 1 alone (run the bench itself under `taskset -c 0`), so
    // that where the scheduler puts it is not one more variable between rounds
    const cpus = process.env.BENCH_SERVICE_CPUS ?? '';
    const argv = [...nodeArgs, script];
    const [cmd, args] = cpus
      ? ['taskset', ['-c', cpus, process.execPath, ...argv]]
      : [process.execPath, argv];
    const child = spawn(cmd, args, {
      cwd: repoDir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...BENCH_CRYPTO_ENV,
        ...env,
        PORT: String(port),
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServiceProcess(child, port);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The process's CPU time so far (user + system, from /proc/<pid>/stat; Linux). */
  async cpuSeconds(): Promise<number> {
    const stat = await readFile(`/proc/${this.child.pid}/stat`, 'utf8');
    // fields after the command name (which may hold spaces), counted from field 3
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  }

  output(): string {
    return this.tail.join('\n');
  }

  /** Polls /health/ready until 200; fails early when the process exits. */
  async waitReady(client: HttpClient, timeoutMs: number): Promise<number> {
    const t0 = performance.now();
    let last = '';
    while (performance.now() - t0 < timeoutMs) {
      if (this.exited) {
        throw new Error(
          `the service exited (${JSON.stringify(this.exited)}) before it was ready:\n${this.output()}`,
        );
      }
      try {
        const res = await client.request('GET', '/health/ready');
        if (res.status === 200) {
          return (performance.now() - t0) / 1000;
        }
        last = `${res.status} ${res.body.slice(0, 300)}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await sleep(250);
    }
    throw new Error(
      `the service was not ready after ${timeoutMs} ms (last: ${last}):\n${this.output()}`,
    );
  }

  /** SIGTERM, then SIGKILL of this child only if it does not exit. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.exited) {
      return;
    }
    this.child.kill('SIGTERM');
    const done = await Promise.race([
      this.exitPromise.then(() => true),
      sleep(timeoutMs).then(() => false),
    ]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exitPromise;
    }
  }
}

/** `parse;dur=0.123, db;dur=7.9, total;dur=9.1` as { parse: 0.123, db: 7.9, total: 9.1 }. */
export function parseServerTiming(header: string | string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of String(header ?? '').split(',')) {
    const m = /^\s*([\w-]+)\s*;\s*dur=([\d.]+)\s*$/.exec(part);
    if (m) {
      out[m[1]] = Number(m[2]);
    }
  }
  return out;
}

/**
 * The median of each Server-Timing stage over `stages` (ms), or undefined when there are
 * none; a stage a search did not go through (e.g. no witness probe on an exact plan)
 * counts 0.
 */
export function medianStages(
  stages: Array<Record<string, number>>,
): Record<string, number> | undefined {
  if (stages.length === 0) {
    return undefined;
  }
  const names = [...new Set(stages.flatMap((s) => Object.keys(s)))];
  return Object.fromEntries(
    names.map((n) => [n, round(summarize(stages.map((s) => s[n] ?? 0)).p50, 3)]),
  );
}
