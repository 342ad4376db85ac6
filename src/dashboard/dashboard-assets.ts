import { Injectable } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const UPLOT = join(dirname(require.resolve('uplot/package.json')), 'dist');
/** Our own page code (copied next to the compiled module by nest-cli's assets). */
const OWN = join(dirname(fileURLToPath(import.meta.url)), 'assets');

/** The only files served: the charting library (uPlot, from npm) and the page's code. */
const FILES: Record<string, { path: string; contentType: string }> = {
  'uPlot.iife.min.js': {
    path: join(UPLOT, 'uPlot.iife.min.js'),
    contentType: 'text/javascript; charset=utf-8',
  },
  'uPlot.min.css': { path: join(UPLOT, 'uPlot.min.css'), contentType: 'text/css; charset=utf-8' },
  'dashboard.js': {
    path: join(OWN, 'dashboard.js'),
    contentType: 'text/javascript; charset=utf-8',
  },
  'dashboard.css': { path: join(OWN, 'dashboard.css'), contentType: 'text/css; charset=utf-8' },
};

@Injectable()
export class DashboardAssets {
  private readonly cache = new Map<string, Buffer>();

  /** null for a name that is not one of the files (no path from the request reaches the disk). */
  async get(name: string): Promise<{ body: Buffer; contentType: string } | null> {
    const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
    if (!file) {
      return null;
    }
    let body = this.cache.get(name);
    if (!body) {
      body = await readFile(file.path);
      this.cache.set(name, body);
    }
    return { body, contentType: file.contentType };
  }
}
