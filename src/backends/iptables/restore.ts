import type { Backend, RetryPolicy } from '../../config/config.js';
import type { Family } from '../../config/net.js';
import { BackendError, RestoreError } from '../../errors.js';
import { type CommandResult, describeFailure, type RunCommand } from '../../system/exec.js';
import { binaryFor } from './binaries.js';

export interface Saved {
  readonly ok: boolean;
  readonly stdout: string;
  readonly failure: string;
}

/** Runs `*-save` of every table. Never throws: callers decide what a failure means. */
export async function save(run: RunCommand, backend: Backend, family: Family): Promise<Saved> {
  const file = binaryFor(backend, family, 'save');
  const result = await run(file, []);
  const ok = result.exitCode === 0;
  return { ok, stdout: result.stdout, failure: ok ? '' : `${file} ${describeFailure(result)}` };
}

/** Every table of the family: mesh-init may own chains in nat, mangle and raw. */
export async function saveOrThrow(
  run: RunCommand,
  backend: Backend,
  family: Family,
): Promise<string> {
  const saved = await save(run, backend, family);
  if (!saved.ok) throw new BackendError(`cannot read the ${family} tables: ${saved.failure}`);
  return saved.stdout;
}

export interface RestoreOptions {
  /** `--noflush`: change only what the text says (apply, cleanup); without it the text's table is replaced (rollback). */
  readonly noflush: boolean;
  readonly retry: RetryPolicy;
  readonly sleep: (ms: number) => Promise<void>;
}

/** Busy, not wrong: another program holds the xtables lock, or the table changed under us. */
const isBusy = (result: CommandResult) =>
  /xtables lock|Resource temporarily unavailable|Device or resource busy/i.test(result.stderr);

/**
 * Feeds one table's text to `*-restore`: one kernel transaction, all or nothing.
 * A busy lock or table is tried again (--max-retries, --retry-interval); a rejected
 * ruleset is not, and the error shows the offending line of the text.
 */
export async function restore(
  run: RunCommand,
  backend: Backend,
  family: Family,
  text: string,
  options: RestoreOptions,
): Promise<void> {
  const file = binaryFor(backend, family, 'restore');
  const { retry } = options;
  const args = [
    ...(options.noflush ? ['--noflush'] : []),
    ...(retry.waitSeconds > 0 ? [`--wait=${retry.waitSeconds}`] : []),
  ];
  for (let attempt = 1; ; attempt++) {
    const result = await run(file, args, text);
    if (result.exitCode === 0) return;
    if (result.exitCode === undefined) {
      throw new BackendError(`cannot run ${file}: ${describeFailure(result)}`);
    }
    // Rejections say `line 7 failed`; parse errors say `Error occurred at line: 7`.
    const lineNumber = /line:? (\d+)/.exec(result.stderr)?.[1];
    const offending =
      lineNumber === undefined ? undefined : text.split('\n')[Number(lineNumber) - 1];
    // A jump to delete that is gone, or a chain to recreate that something jumps to:
    // the table is not what the text was planned for (nft says "busy" for the latter).
    const stale = /^-[DXN] /.test(offending ?? '');
    if (!stale && isBusy(result)) {
      if (attempt <= retry.maxRetries) {
        await options.sleep(retry.intervalMs);
        continue;
      }
      throw new RestoreError(
        `${file} found the ${family} tables busy ${attempt} times (--wait ${retry.waitSeconds} s, --max-retries ${retry.maxRetries}, --retry-interval ${retry.intervalMs / 1000} s); nothing of the ${family} rules was applied: ${describeFailure(result)}`,
      );
    }
    throw new RestoreError(
      [
        `${file} rejected the ${family} rules (nothing of them was applied): ${describeFailure(result)}`,
        ...(offending === undefined ? [] : [`  line ${lineNumber}: ${offending}`]),
      ].join('\n'),
      { stale },
    );
  }
}
