import { execa } from 'execa';
import { binaryFor } from './backend.js';
import type { Backend, RetryPolicy } from './config.js';
import { BackendError, RestoreError } from './errors.js';
import type { Family } from './rules.js';

export interface CommandResult {
  /** undefined when the program could not be started at all. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** Why it could not be started (e.g. not found). */
  readonly startError?: string;
}

export type RunCommand = (
  file: string,
  args: readonly string[],
  input?: string,
) => Promise<CommandResult>;

/** The one place that starts programs. No shell: arguments are argv, rules go to stdin. */
export const runCommand: RunCommand = async (file, args, input) => {
  const result = await execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  const code = (result as { code?: string }).code;
  return {
    exitCode: result.exitCode,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    ...(result.exitCode === undefined
      ? { startError: code === 'ENOENT' ? 'not found' : (code ?? result.shortMessage) }
      : {}),
  };
};

function describeFailure(result: CommandResult): string {
  if (result.exitCode === undefined) return result.startError ?? 'could not be started';
  const stderr = result.stderr.trim();
  return `exit ${result.exitCode}${stderr ? `: ${stderr}` : ''}`;
}

export interface Saved {
  readonly ok: boolean;
  readonly stdout: string;
  readonly failure: string;
}

/** Runs `*-save`, all tables or only nat. Never throws: callers decide what a failure means. */
export async function save(
  run: RunCommand,
  backend: Backend,
  family: Family,
  tables: 'all' | 'nat',
): Promise<Saved> {
  const file = binaryFor(backend, family, 'save');
  const result = await run(file, tables === 'nat' ? ['-t', 'nat'] : []);
  const ok = result.exitCode === 0;
  return { ok, stdout: result.stdout, failure: ok ? '' : `${file} ${describeFailure(result)}` };
}

export async function saveOrThrow(
  run: RunCommand,
  backend: Backend,
  family: Family,
): Promise<string> {
  const saved = await save(run, backend, family, 'nat');
  if (!saved.ok) throw new BackendError(`cannot read the ${family} nat table: ${saved.failure}`);
  return saved.stdout;
}

export interface RestoreOptions {
  /** `--noflush`: change only what the text says (apply, cleanup); without it the nat table is replaced (rollback). */
  readonly noflush: boolean;
  readonly retry: RetryPolicy;
  readonly sleep: (ms: number) => Promise<void>;
}

/** Busy, not wrong: another program holds the xtables lock, or the table changed under us. */
const isBusy = (result: CommandResult) =>
  /xtables lock|Resource temporarily unavailable|Device or resource busy/i.test(result.stderr);

/**
 * Feeds one family's text to `*-restore`: one kernel transaction, all or nothing.
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

/**
 * IPv6 gives lo only ::1/128, so the proxy could not bind ::6 for its inbound
 * passthrough (IPv4 has all of 127/8). `replace` makes a re-run a no-op.
 */
export async function addPassthroughAddress(run: RunCommand, address: string): Promise<void> {
  const args = ['-6', 'addr', 'replace', `${address}/128`, 'dev', 'lo'];
  const result = await run('ip', args);
  if (result.exitCode !== 0) {
    throw new BackendError(
      `cannot add ${address}/128 to lo (ip ${args.join(' ')}): ${describeFailure(result)}`,
    );
  }
}
