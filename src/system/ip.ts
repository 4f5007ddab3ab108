import type { TproxyRouting } from '../config/config.js';
import type { Family } from '../config/net.js';
import { BackendError } from '../errors.js';
import { type CommandResult, describeFailure, type RunCommand } from './exec.js';

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
