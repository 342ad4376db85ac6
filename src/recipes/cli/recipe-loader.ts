import { Logger } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { createReadStream } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { DataSource } from 'typeorm';
import { validationMessages } from '../../app.setup.js';
import { BatchRecipeDto } from '../dto/recipe.dto.js';
import { BATCH_SIZE } from '../recipes.constants.js';
import { upsertRecipes } from '../recipes.repository.js';

export interface LoadCheckpoint {
  file: string;
  size: number;
  mtimeMs: number;
  /** Byte offset just after the last line of the last committed batch. */
  offset: number;
  lines: number;
  rows: number;
}

export interface LoadResult {
  rows: number;
  lines: number;
  resumedFromLine: number;
  seconds: number;
}

export class LoadError extends Error {
  constructor(
    readonly line: number,
    problems: string[],
  ) {
    super(`line ${line}: ${problems.join('; ')}`);
    this.name = 'LoadError';
  }
}

const logger = new Logger('RecipeLoader');

export function checkpointPath(file: string): string {
  return `${file}.progress.json`;
}

async function readCheckpoint(
  file: string,
  size: number,
  mtimeMs: number,
): Promise<LoadCheckpoint | null> {
  try {
    const cp = JSON.parse(await readFile(checkpointPath(file), 'utf8')) as LoadCheckpoint;
    if (cp.size === size && cp.mtimeMs === mtimeMs && cp.offset <= size) {
      return cp;
    }
    logger.warn({ file }, 'checkpoint belongs to another version of the file: starting over');
    return null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return null;
    }
    throw err;
  }
}

/** Written as *.tmp then renamed: a crash never leaves a torn checkpoint. */
async function writeCheckpoint(file: string, cp: LoadCheckpoint): Promise<void> {
  const path = checkpointPath(file);
  await writeFile(`${path}.tmp`, JSON.stringify(cp));
  await rename(`${path}.tmp`, path);
}

function parseLine(text: string, line: number): BatchRecipeDto {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new LoadError(line, ['not valid JSON']);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new LoadError(line, ['must be a JSON object']);
  }
  const dto = plainToInstance(BatchRecipeDto, raw);
  const problems = validationMessages(
    validateSync(dto, { whitelist: true, forbidNonWhitelisted: true }),
  );
  if (!dto.id) {
    problems.push('id is required in bulk files (it makes re-runs idempotent)');
  }
  if (problems.length > 0) {
    throw new LoadError(line, problems);
  }
  return dto;
}

/**
 * Loads a JSONL file of recipes (one JSON object per line, with `id` and usually
 * `embedding`) in batches of BATCH_SIZE, one transaction and one statement each.
 * After every committed batch a checkpoint records how far it got; a re-run of the
 * same file resumes there. Upserts by id make a replayed batch harmless.
 */
export async function loadRecipes(
  dataSource: DataSource,
  file: string,
  opts: {
    batchSize?: number;
    onProgress?: (cp: LoadCheckpoint, total: number) => void;
    /** After each committed batch (the loader CLI tells cached searches). */
    afterBatch?: () => Promise<void>;
  } = {},
): Promise<LoadResult> {
  const batchSize = Math.min(opts.batchSize ?? BATCH_SIZE, BATCH_SIZE);
  const info = await stat(file);
  const resume = await readCheckpoint(file, info.size, info.mtimeMs);
  const cp: LoadCheckpoint = resume ?? {
    file,
    size: info.size,
    mtimeMs: info.mtimeMs,
    offset: 0,
    lines: 0,
    rows: 0,
  };
  const resumedFromLine = cp.lines;
  if (resume) {
    logger.log({ file, line: cp.lines + 1, rows: cp.rows }, 'resuming from checkpoint');
  }
  const started = Date.now();
  const input = createReadStream(file, { start: cp.offset });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let batch: BatchRecipeDto[] = [];
  let batchEndOffset = cp.offset;
  let offset = cp.offset;
  let lineNo = cp.lines;

  const flush = async (): Promise<void> => {
    if (batch.length === 0) {
      return;
    }
    const items = batch;
    await dataSource.transaction((m) => upsertRecipes(m, items));
    await opts.afterBatch?.();
    cp.rows += items.length;
    cp.lines = lineNo;
    cp.offset = batchEndOffset;
    await writeCheckpoint(file, cp);
    opts.onProgress?.(cp, info.size);
    batch = [];
  };

  try {
    for await (const text of lines) {
      lineNo += 1;
      // NOTE: byte accounting assumes '\n' line ends (JSONL); '\r' is counted as part of the line.
      offset += Buffer.byteLength(text, 'utf8') + 1;
      if (text.trim() === '') {
        batchEndOffset = Math.min(offset, info.size);
        continue;
      }
      batch.push(parseLine(text, lineNo));
      batchEndOffset = Math.min(offset, info.size);
      if (batch.length >= batchSize) {
        await flush();
      }
    }
    // The last batch's lines: make the checkpoint point at them before flushing.
    await flush();
  } finally {
    lines.close();
    input.destroy();
  }
  return {
    rows: cp.rows,
    lines: cp.lines,
    resumedFromLine,
    seconds: (Date.now() - started) / 1000,
  };
}
