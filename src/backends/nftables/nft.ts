/**
 * The only module of this backend that starts a program: `nft -f -` with the
 * script on stdin, and `nft -j list ruleset inet`.
 */
import type { RetryPolicy } from '../../config/config.js';
import { BackendError, RestoreError } from '../../errors.js';
import { type CommandResult, describeFailure, type RunCommand } from '../../system/exec.js';

const NFT = 'nft';

/** What a pod without nft is told. */
const NEEDS_NFT = "--native-nftables needs the nft program (Debian's nftables package)";

/** nft refused a script: one transaction, so nothing of it was applied. */
export class NftRejectedError extends RestoreError {
  /** The script's lines that nft names as failing (1-based). */
  readonly lines: readonly number[];
  readonly stderr: string;
  constructor(message: string, lines: readonly number[], stderr: string) {
    super(message);
    this.lines = lines;
    this.stderr = stderr;
  }
}

/**
 * Not wrong, only unlucky: the ruleset changed while nft read it, or the kernel was
 * busy. Runs are serialised by the kernel, so this is rare; it is tried again.
 */
const isBusy = (result: CommandResult) =>
  /Interrupted system call|Resource temporarily unavailable|Device or resource busy/i.test(
    result.stderr,
  );

function cannotRun(result: CommandResult): BackendError {
  return new BackendError(`cannot run ${NFT}: ${describeFailure(result)}; ${NEEDS_NFT}`);
}

interface Retry {
  readonly retry: RetryPolicy;
  readonly sleep: (ms: number) => Promise<void>;
}

/** Runs nft, trying again while the kernel is busy (--max-retries, --retry-interval). */
async function runNft(
  run: RunCommand,
  args: readonly string[],
  input: string | undefined,
  { retry, sleep }: Retry,
): Promise<{ result: CommandResult; attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    const result = await run(NFT, args, input);
    if (result.exitCode === undefined) throw cannotRun(result);
    if (result.exitCode === 0 || !isBusy(result) || attempt > retry.maxRetries) {
      return { result, attempts: attempt };
    }
    await sleep(retry.intervalMs);
  }
}

/** nft names each failing line of its input: `/dev/stdin:12:1-40: Error: …`. */
function failingLines(stderr: string): number[] {
  const lines = [...stderr.matchAll(/^[^\s:]*:(\d+):\d+(?:-\d+)?: Error:/gm)].map((m) =>
    Number(m[1]),
  );
  return [...new Set(lines)];
}

/**
 * Feeds a script to `nft -f -`: one kernel transaction, all or nothing. A rejected
 * script is not tried again; the error shows nft's message and the lines it names.
 */
export async function applyScript(run: RunCommand, script: string, options: Retry): Promise<void> {
  const { result, attempts } = await runNft(run, ['-f', '-'], script, options);
  if (result.exitCode === 0) return;
  const lines = failingLines(result.stderr);
  const text = script.split('\n');
  const busy = isBusy(result) ? ` (the kernel stayed busy through ${attempts} tries)` : '';
  throw new NftRejectedError(
    [
      `${NFT} rejected the rules${busy}; nothing of them was applied: ${describeFailure(result)}`,
      ...lines.flatMap((n) => (n <= text.length ? [`  line ${n}: ${text[n - 1]}`] : [])),
    ].join('\n'),
    lines,
    result.stderr,
  );
}

/** The live inet tables, as nft's JSON (every inet table: the caller picks its own). */
export async function listRuleset(run: RunCommand, options: Retry): Promise<string> {
  const { result } = await runNft(run, ['-j', 'list', 'ruleset', 'inet'], undefined, options);
  if (result.exitCode !== 0) {
    throw new BackendError(`cannot read the nft ruleset: ${NFT} ${describeFailure(result)}`);
  }
  return result.stdout;
}
