import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where encrypted export files live. Local directory by default; an object store
 * (S3) implements the same four calls.
 */
export interface ExportStore {
  put(name: string, data: Buffer): Promise<void>;
  get(name: string): Promise<Buffer>;
  delete(name: string): Promise<void>;
  list(): Promise<string[]>;
}

export const EXPORT_STORE = Symbol('EXPORT_STORE');

const NAME = /^[0-9a-f-]{36}\.enc$/;

export class LocalExportStore implements ExportStore {
  constructor(private readonly dir: string) {}

  /** Written to a temporary file, fsynced, then renamed: a crash never leaves half a file. */
  async put(name: string, data: Buffer): Promise<void> {
    this.check(name);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dir, `.${name}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, name));
  }

  get(name: string): Promise<Buffer> {
    this.check(name);
    return readFile(join(this.dir, name));
  }

  async delete(name: string): Promise<void> {
    this.check(name);
    await rm(join(this.dir, name), { force: true });
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => NAME.test(n));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') {
        return [];
      }
      throw err;
    }
  }

  /** Names are `<export uuid>.enc`, never a path from input. */
  private check(name: string): void {
    if (!NAME.test(name)) {
      throw new Error(`bad export file name`);
    }
  }
}
