import { execa } from 'execa';
import { binaryFor } from './backend.js';
import type { Backend, RetryPolicy, TproxyRouting } from './config.js';
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

const ipFlag = (family: Family) => (family === 'ipv4' ? '-4' : '-6');
const anyDestination = (family: Family) => (family === 'ipv4' ? 'default' : '::/0');

/**
 * The priority of TPROXY's rule: ahead of the main table (32766), and what `ip rule
 * add` picks by itself in a fresh pod (so the rule reads as Istio's). Fixed, so
 * that the kernel refuses a second identical rule (File exists) when runs race.
 */
const LOCAL_RULE_PRIORITY = '32765';

/** `ip` argv of TPROXY's policy routing: marked packets look up a table whose only route is lo. */
function localRouteArgs(family: Family, { mark, routeTable }: TproxyRouting) {
  const table = String(routeTable);
  return {
    list: [ipFlag(family), 'rule', 'list', 'fwmark', String(mark), 'table', table],
    addRule: [
      ...[ipFlag(family), 'rule', 'add', 'fwmark', String(mark), 'lookup', table],
      ...['pref', LOCAL_RULE_PRIORITY],
    ],
    delRule: [ipFlag(family), 'rule', 'del', 'fwmark', String(mark), 'lookup', table],
    route: ['local', anyDestination(family), 'dev', 'lo', 'table', table],
  };
}

/**
 * Whether TPROXY's table holds its local route. A table that was never made is
 * "FIB table does not exist"; any other failure is an error, not a missing route.
 */
async function showsLocalRoute(run: RunCommand, family: Family, routing: TproxyRouting) {
  const args = [ipFlag(family), 'route', 'show', 'table', String(routing.routeTable)];
  const shown = await runIp(run, args);
  if (shown.exitCode !== 0 && !/FIB table does not exist/i.test(shown.stderr)) {
    throw new BackendError(
      `cannot read TPROXY's route (ip ${args.join(' ')}): ${describeFailure(shown)}`,
    );
  }
  return shown.exitCode === 0 && /^local (default|::\/0) dev lo\b/m.test(shown.stdout);
}

/** What addLocalRoute or removeLocalRoute runs, for --dry-run. */
export function localRouteCommands(
  family: Family,
  routing: TproxyRouting,
  action: 'add' | 'remove',
): string[] {
  const args = localRouteArgs(family, routing);
  const route = args.route.join(' ');
  return action === 'add'
    ? [
        `ip ${args.addRule.join(' ')} (unless listed)`,
        `ip ${ipFlag(family)} route replace ${route}`,
      ]
    : [
        `ip ${args.delRule.join(' ')} (each one listed)`,
        `ip ${ipFlag(family)} route del ${route} (if there)`,
      ];
}

async function runIp(run: RunCommand, args: readonly string[]): Promise<CommandResult> {
  const result = await run('ip', args);
  if (result.exitCode === undefined) {
    throw new BackendError(`cannot run ip ${args.join(' ')}: ${describeFailure(result)}`);
  }
  return result;
}

async function ipOrThrow(run: RunCommand, args: readonly string[], what: string) {
  const result = await runIp(run, args);
  if (result.exitCode !== 0) {
    throw new BackendError(`cannot ${what} (ip ${args.join(' ')}): ${describeFailure(result)}`);
  }
  return result;
}

/** How many copies of TPROXY's rule `ip rule list` shows. */
async function countLocalRules(run: RunCommand, args: ReturnType<typeof localRouteArgs>) {
  const listed = await ipOrThrow(run, args.list, "list TPROXY's ip rule");
  return listed.stdout.split('\n').filter((line) => line.trim() !== '').length;
}

/**
 * TPROXY marks inbound packets; this rule and route deliver marked packets locally,
 * whatever their destination. `ip rule add` would add a duplicate on a re-run, so
 * the rule is added only when it is not listed; `route replace` is a no-op then.
 * `onRuleAdded` hears of a rule this run added, so that a rollback can take it away.
 */
export async function addLocalRoute(
  run: RunCommand,
  family: Family,
  routing: TproxyRouting,
  onRuleAdded: () => void,
): Promise<void> {
  const args = localRouteArgs(family, routing);
  if ((await countLocalRules(run, args)) === 0) {
    const added = await runIp(run, args.addRule);
    // A racing run added the same rule since it was listed: it is there, not ours.
    if (added.exitCode !== 0 && !/File exists/i.test(added.stderr)) {
      throw new BackendError(
        `cannot add TPROXY's ip rule (ip ${args.addRule.join(' ')}): ${describeFailure(added)}`,
      );
    }
    // Before the route: if that fails, the rollback knows of the rule already.
    if (added.exitCode === 0) onRuleAdded();
  }
  await ipOrThrow(run, [ipFlag(family), 'route', 'replace', ...args.route], "add TPROXY's route");
}

/** Deletes one copy of TPROXY's rule: the one a failed run added. */
export async function deleteLocalRule(run: RunCommand, family: Family, routing: TproxyRouting) {
  await ipOrThrow(run, localRouteArgs(family, routing).delRule, "delete TPROXY's ip rule");
}

/**
 * Takes TPROXY's rule (every copy listed) and route away. Where `ip` cannot be
 * started there is nothing to take away: mesh-init could not have added them.
 * `onRemoving` hears of it before anything is removed, so a rollback can add back.
 */
export async function removeLocalRoute(
  run: RunCommand,
  family: Family,
  routing: TproxyRouting,
  onRemoving: () => void = () => {},
): Promise<'removed' | 'absent' | 'no ip'> {
  const args = localRouteArgs(family, routing);
  const listed = await run('ip', args.list);
  if (listed.exitCode === undefined) return 'no ip';
  if (listed.exitCode !== 0) {
    throw new BackendError(
      `cannot list TPROXY's ip rule (ip ${args.list.join(' ')}): ${describeFailure(listed)}`,
    );
  }
  let removed = false;
  const copies = listed.stdout.split('\n').filter((line) => line.trim() !== '').length;
  const routed = await showsLocalRoute(run, family, routing);
  if (copies > 0 || routed) onRemoving();
  for (let left = copies; left > 0; left--) {
    await ipOrThrow(run, args.delRule, "delete TPROXY's ip rule");
    removed = true;
  }
  if (routed) {
    await ipOrThrow(run, [ipFlag(family), 'route', 'del', ...args.route], "delete TPROXY's route");
    removed = true;
  }
  return removed ? 'removed' : 'absent';
}

/** What --check finds of TPROXY's policy routing in one family. */
export async function readLocalRoute(
  run: RunCommand,
  family: Family,
  routing: TproxyRouting,
): Promise<{ rule: boolean; route: boolean }> {
  const args = localRouteArgs(family, routing);
  const rule = (await countLocalRules(run, args)) > 0;
  return { rule, route: await showsLocalRoute(run, family, routing) };
}

/** Whether lo holds the IPv6 passthrough address (--check). */
export async function hasPassthroughAddress(run: RunCommand, address: string): Promise<boolean> {
  const shown = await runIp(run, ['-6', 'addr', 'show', 'dev', 'lo']);
  return shown.exitCode === 0 && shown.stdout.includes(`inet6 ${address}/128`);
}
