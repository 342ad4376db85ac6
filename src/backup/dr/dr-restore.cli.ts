import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createPino, PinoLoggerService } from '../../common/logger.js';
import { ConfigValidationError, loadConfig } from '../../config/app-config.js';
import { DisasterRecovery, DrStepError } from './disaster-recovery.js';
import type { DrSummary } from './disaster-recovery.js';
import { DR_USAGE, DrRefusedError, DrUsageError, parseDrArgs } from './dr-plan.js';

/** Exit codes: 0 restored and validated (or the dry run's plan); 1 a step failed; 2 usage; 3 refused, nothing changed. */
const EXIT = { failed: 1, usage: 2, refused: 3 } as const;

/** docker/stack.sh of this checkout, from src/ (ts) or dist/src/ (built). */
function stackScript(): string {
  for (let dir = import.meta.dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'docker', 'stack.sh');
    if (existsSync(candidate)) {
      return candidate;
    }
  }
  throw new Error('docker/stack.sh not found above this file');
}

function printSummary(s: DrSummary): void {
  const out = (l: string): boolean => process.stdout.write(`${l}\n`);
  out(`[dr] step 7/7 summary${s.dryRun ? ' (dry run: nothing was changed)' : ''}`);
  out(`[dr]   target           ${s.target}`);
  out(`[dr]   backup set       ${s.backup}`);
  for (const st of s.steps) {
    out(`[dr]   ${st.n}. ${st.step.padEnd(26)} ${st.seconds.toFixed(1)} s`);
  }
  if (s.rtoSeconds !== null) {
    out(
      `[dr]   recovery point   ${s.recoveryPoint?.lastTransactionAt ? `last transaction replayed ${s.recoveryPoint.lastTransactionAt}` : "no transaction replayed after the backup's consistency point"} (LSN ${s.recoveryPoint?.lsn ?? '?'}), now on timeline ${s.validation?.timeline ?? '?'}`,
    );
    out(
      `[dr]   measured RTO     ${s.rtoSeconds.toFixed(1)} s (objective ${s.objectives.rtoSeconds} s): from the start of this command to a validated database with the erasure ledger re-applied`,
    );
    for (const m of s.movedAside) {
      out(`[dr]   moved aside      ${m}`);
    }
    out(
      '[dr]   next: the manual checklist of docs/dr_runbook.md (configuration, DNS, monitoring, notification, a new full backup)',
    );
  }
  out(`DR_SUMMARY ${JSON.stringify(s)}`);
}

/** `npm run dr:restore -- (--target-time T | --target-lsn L | --latest) [--dry-run]`: docs/dr_runbook.md. */
async function main(): Promise<number> {
  let options;
  try {
    options = parseDrArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof DrUsageError) {
      process.stderr.write(`dr:restore: ${err.message}\n${DR_USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const config = loadConfig();
  // The steps print their own lines; the service's modules (booted for the ledger) only
  // speak up for warnings unless debugging.
  const level = ['debug', 'trace'].includes(config.logLevel) ? config.logLevel : 'warn';
  Logger.overrideLogger(new PinoLoggerService(createPino(level)));
  const dr = new DisasterRecovery(config, stackScript(), (line) =>
    process.stdout.write(`${line}\n`),
  );
  const summary = await dr.run(options);
  printSummary(summary);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message =
      err instanceof ConfigValidationError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`dr:restore: FAILED: ${message}\n`);
    if (err instanceof DrRefusedError) {
      process.stderr.write('dr:restore: nothing was changed\n');
      process.exit(EXIT.refused);
    }
    if (err instanceof DrStepError) {
      process.stderr.write(
        'dr:restore: see docs/dr_runbook.md ("When a step fails"); data folders that were moved aside are under moved-aside/ in the stack folder\n',
      );
    }
    process.exit(EXIT.failed);
  },
);
