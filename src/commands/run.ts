/**
 * The init container's run, by mode: apply, dry-run, check, cleanup, validate. The
 * same steps for every backend; the backend's engine does what is its own.
 */
import { Changes } from '../backends/changes.js';
import type { Engine } from '../backends/engine.js';
import { IptablesEngine } from '../backends/iptables/engine.js';
import { NftablesEngine } from '../backends/nftables/engine.js';
import { type Config, withResolvers } from '../config/config.js';
import { namesGroups, parseGroupFile, withGroupIds } from '../config/groups.js';
import type { Family } from '../config/net.js';
import { parseResolvConf } from '../config/resolv.js';
import { BackendError, EXIT_DRIFT, EXIT_OK, UsageError, ValidationError } from '../errors.js';
import type { Logger } from '../log.js';
import { INBOUND_PASSTHROUGH, usesTproxy } from '../plan/matches.js';
import { planTables } from '../plan/plan.js';
import type { RunCommand } from '../system/exec.js';
import type { AddressFamilies } from '../system/interfaces.js';
import {
  addLocalRoute,
  addPassthroughAddress,
  deleteLocalRule,
  hasPassthroughAddress,
  localRouteCommands,
  readLocalRoute,
  removeLocalRoute,
} from '../system/ip.js';
import { addressFamiliesIn, inNamespace, type LocateProgram } from '../system/netns.js';
import type { ValidationResult } from '../system/probe.js';

export interface Deps {
  readonly run: RunCommand;
  /** The families the pod has an address of that is neither loopback nor link-local. */
  readonly addressFamilies: () => AddressFamilies | Promise<AddressFamilies>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => Date;
  /** --run-validation: probes the capture of these families in this namespace. */
  readonly validate: (config: Config, families: readonly Family[]) => Promise<ValidationResult>;
  /** In [0, 1): spreads retries of runs that collided. */
  readonly random: () => number;
  /** The init container's /etc/group, for group names in the owner-group filters. */
  readonly readGroupFile: () => Promise<string>;
  /** The pod's /etc/resolv.conf, for --redirect-dns. */
  readonly readResolvConf: () => Promise<string>;
  /**
   * With --network-namespace: the files of nsenter and of the programs it starts.
   * Unset, they are found on PATH; the CNI plugin cannot trust the runtime's PATH.
   */
  readonly locate?: LocateProgram;
}

/** The families a run captures, and why IPv6 is not among them (for the log). */
interface Families {
  readonly families: Family[];
  readonly ipv6Left: string | undefined;
}

/**
 * IPv4 always; IPv6 with `--ipv6 true`, or, by default, as Istio decides it: where
 * the pod has IPv6 and no IPv4 (an IPv6-only pod), or has IPv6 and --dual-stack
 * says the mesh's proxies serve both families. A proxy that listens on IPv4 only
 * would refuse every captured IPv6 connection.
 */
async function familiesFor(config: Config, deps: Deps): Promise<Families> {
  const only = (ipv6Left: string): Families => ({ families: ['ipv4'], ipv6Left });
  if (config.ipv6 === false) return only('--ipv6 false');
  if (config.ipv6 === 'auto') {
    const has = await deps.addressFamilies();
    if (!has.ipv6) return only('no global IPv6 address');
    // What an earlier run with --dual-stack or --ipv6 true left is cleaned up too.
    if (has.ipv4 && !config.dualStack && config.mode !== 'cleanup') {
      return only('the pod has IPv4 too and --dual-stack is off, as in Istio');
    }
  }
  return { families: ['ipv4', 'ipv6'], ipv6Left: undefined };
}

/** With --network-namespace, every program runs in that namespace, and its addresses count. */
function scopedTo(config: Config, deps: Deps): Deps {
  const path = config.networkNamespace;
  if (path === undefined) return deps;
  const run = inNamespace(deps.run, path, deps.locate);
  return { ...deps, run, addressFamilies: () => addressFamiliesIn(run) };
}

async function runValidation(
  config: Config,
  families: readonly Family[],
  deps: Deps,
  log: Logger,
): Promise<void> {
  const result = await deps.validate(config, families);
  if (!result.ok) throw new ValidationError(`validation failed: ${result.detail}`);
  log.info('validated', `validation passed: ${result.detail}`);
}

function ipv6Note({ ipv6Left }: Families): string {
  return ipv6Left === undefined ? '' : `; ipv6 not captured (${ipv6Left})`;
}

/** Native nftables only when asked for: --iptables-backend auto picks among iptables backends. */
function engineFor(config: Config, deps: Deps, log: Logger): Engine {
  const engineDeps = { run: deps.run, sleep: deps.sleep, random: deps.random, log };
  return config.nativeNftables ? new NftablesEngine(engineDeps) : new IptablesEngine(engineDeps);
}

/** --dry-run prints the text apply would feed for what is live, and names the other commands it would run. */
async function printDryRun(
  config: Config,
  families: Family[],
  engine: Engine,
  deps: Deps,
  log: Logger,
) {
  const preview = await engine.preview(config, families);
  deps.stdout(preview.text);
  const commands = [
    ...(families.includes('ipv6') && config.mode === 'apply'
      ? [`ip -6 addr replace ${INBOUND_PASSTHROUGH.ipv6.address}/128 dev lo`]
      : []),
    ...(config.mode === 'cleanup'
      ? families.flatMap((family) => localRouteCommands(family, config.tproxy, 'remove'))
      : usesTproxy(config)
        ? families.flatMap((family) => localRouteCommands(family, config.tproxy, 'add'))
        : preview.tproxyLeft.flatMap((family) =>
            localRouteCommands(family, config.tproxy, 'remove'),
          )),
  ];
  for (const command of commands) log.info('dry-run', `dry-run: would also run: ${command}`);
  log.info('dry-run', `dry-run: printed the ${families.join(' and ')} text; nothing applied`, {
    families,
  });
  return EXIT_OK;
}

/** What --check finds missing outside iptables: TPROXY's rule and route, `::6` on lo. */
async function routingDrift(config: Config, families: Family[], deps: Deps): Promise<string[]> {
  const drift: string[] = [];
  if (families.includes('ipv6')) {
    const address = INBOUND_PASSTHROUGH.ipv6.address;
    if (!(await hasPassthroughAddress(deps.run, address))) {
      drift.push(
        `ipv6: ${address}/128 is not on lo (the proxy cannot bind its passthrough source)`,
      );
    }
  }
  if (!usesTproxy(config)) return drift;
  const { mark, routeTable } = config.tproxy;
  for (const family of families) {
    const found = await readLocalRoute(deps.run, family, config.tproxy);
    if (!found.rule)
      drift.push(`${family}: ip rule "fwmark ${mark} lookup ${routeTable}" is missing`);
    if (!found.route) {
      drift.push(`${family}: route "local default dev lo table ${routeTable}" is missing`);
    }
  }
  return drift;
}

/** --check: the difference between live and planned rules, exit 5 when there is one. */
async function checkDrift(
  config: Config,
  scope: Families,
  engine: Engine,
  deps: Deps,
  log: Logger,
) {
  const { families } = scope;
  const drift = [
    ...(await engine.check(config, families)),
    ...(await routingDrift(config, families, deps)),
  ];
  if (drift.length === 0) {
    log.info('check', `check: the live rules are the planned ones${ipv6Note(scope)}`, {
      drift: false,
    });
    return EXIT_OK;
  }
  deps.stdout(`${drift.join('\n')}\n`);
  log.info('check', `check: the live rules differ from the planned ones (${drift.length} lines)`, {
    drift: true,
  });
  return EXIT_DRIFT;
}

/** --cleanup: the engine removes mesh-init's chains and jumps, then TPROXY's route goes. */
async function cleanUp(
  config: Config,
  families: Family[],
  engine: Engine,
  deps: Deps,
  log: Logger,
) {
  const changes = new Changes();
  try {
    await engine.cleanup(config, families, changes);
    // After the chains that mark packets are gone, so TPROXY never runs without its
    // route; a failure here puts the chains, and what was removed of the route, back.
    for (const family of families) {
      const outcome = await removeLocalRoute(deps.run, family, config.tproxy, () =>
        changes.added({
          kind: 'routing',
          undo: () => addLocalRoute(deps.run, family, config.tproxy, () => {}),
          done: `the ${family} TPROXY rule and route were added back`,
          failed: (why) =>
            `the ${family} TPROXY rule and route were added back: failed too: ${why}`,
        }),
      );
      if (outcome === 'no ip') {
        log.info('cleanup', `cleanup: no ip program, so no ${family} TPROXY route to remove`);
      }
    }
  } catch (error) {
    await changes.putBack(error);
  }
  log.info('cleaned', `removed mesh-init's chains and jumps from ${families.join(' and ')}`, {
    families,
  });
  return EXIT_OK;
}

/**
 * What the rules need outside the tables, before any rule is applied: `::6` on lo
 * for IPv6, and TPROXY's policy route (whose rule a failed run takes back).
 */
async function prepareRouting(
  config: Config,
  families: readonly Family[],
  deps: Deps,
  changes: Changes,
) {
  if (families.includes('ipv6')) {
    await addPassthroughAddress(deps.run, INBOUND_PASSTHROUGH.ipv6.address);
  }
  if (!usesTproxy(config)) return;
  for (const family of families) {
    await addLocalRoute(deps.run, family, config.tproxy, () =>
      changes.added({
        kind: 'routing',
        undo: () => deleteLocalRule(deps.run, family, config.tproxy),
        done: `the ${family} ip rule fwmark ${config.tproxy.mark} this run added was deleted again`,
        failed: (why) =>
          `the ${family} ip rule fwmark ${config.tproxy.mark} this run added was deleted again: failed too: ${why}`,
      }),
    );
  }
}

/** Applies the rules; any failure after a change puts every change back. */
async function applyRules(
  config: Config,
  scope: Families,
  engine: Engine,
  deps: Deps,
  log: Logger,
) {
  const { families } = scope;
  const changes = new Changes();
  let applied: Awaited<ReturnType<Engine['apply']>>;
  try {
    applied = await engine.apply(config, families, changes, () =>
      prepareRouting(config, families, deps, changes),
    );
  } catch (error) {
    return changes.putBack(error);
  }
  // Rules now in place, whether this run appended them or kept them.
  const rules = families.map((family) =>
    planTables(config, family).reduce((sum, plan) => sum + plan.rules.length, 0),
  );
  const summary = families.map((f, i) => `${f} (${rules[i]} rules)`).join(' and ');
  log.info('applied', `applied ${summary} with ${applied.label}${ipv6Note(scope)}`, {
    families,
    rules,
    reads: applied.reads,
  });
  await dropStaleLocalRoute(config, applied.tproxyLeft, deps, log);
  if (config.validate) await runValidation(config, families, deps, log);
  return EXIT_OK;
}

/**
 * A re-run that no longer uses TPROXY (its chains were read, the plan has none)
 * removes the policy route too: a foreign rule marking packets with the same mark
 * would otherwise have them delivered locally.
 */
async function dropStaleLocalRoute(
  config: Config,
  families: readonly Family[],
  deps: Deps,
  log: Logger,
): Promise<void> {
  for (const family of families) {
    try {
      if ((await removeLocalRoute(deps.run, family, config.tproxy)) === 'removed') {
        log.info('applied', `removed the ${family} TPROXY route: TPROXY is no longer used`);
      }
    } catch (error) {
      // The rules are applied and right; only an unused route is left. Said loudly,
      // but no reason to keep the pod from starting.
      log.error(
        'applied',
        `the ${family} TPROXY rule and route are no longer used, and removing them failed (what is left stays): ${(error as Error).message}`,
      );
    }
  }
}

/**
 * DNS capture reads the pod's resolvers: --redirect-dns captures DNS to them, and
 * with either mode a resolver on lo needs a conntrack zone rule of its own.
 */
async function readResolvers(config: Config, deps: Deps, log: Logger): Promise<Config> {
  if (config.dns.capture === 'off' || config.mode === 'cleanup') return config;
  // Applied from outside the pod (--network-namespace, the CNI plugin), this
  // /etc/resolv.conf is not the pod's: all of port 53 is captured, as Istio's CNI does.
  if (config.networkNamespace !== undefined) {
    log.info(
      'dns',
      "dns: capturing DNS to any address: the pod's /etc/resolv.conf cannot be read from outside its namespace (as with --capture-all-dns)",
    );
    return { ...config, dns: { ...config.dns, capture: 'all', resolvers: [] } };
  }
  let text: string;
  try {
    text = await deps.readResolvConf();
  } catch (error) {
    throw new BackendError(
      `cannot read /etc/resolv.conf for DNS capture: ${(error as Error).message}`,
    );
  }
  const { resolvers, skipped } = parseResolvConf(text);
  const addresses = resolvers.map((cidr) => cidr.address);
  const named = addresses.length === 0 ? 'no nameserver' : addresses.join(', ');
  const ignored =
    skipped.length === 0
      ? ''
      : `; not an address, ignored: ${skipped.map((v) => `"${v}"`).join(', ')}`;
  log.info(
    'dns',
    config.dns.capture === 'all'
      ? `dns: capturing DNS to any address (--capture-all-dns); /etc/resolv.conf names ${named}${ignored}`
      : addresses.length === 0
        ? `dns: /etc/resolv.conf names no nameserver; no DNS is captured (--capture-all-dns captures all)${ignored}`
        : `dns: capturing DNS to ${named} (from /etc/resolv.conf)${ignored}`,
    { resolvers: addresses, skipped },
  );
  return withResolvers(config, resolvers);
}

/** Group names of the owner-group filters, as their GIDs in this container. */
async function readGroups(config: Config, deps: Deps): Promise<Config> {
  if (!namesGroups(config)) return config;
  let text: string;
  try {
    text = await deps.readGroupFile();
  } catch (error) {
    throw new UsageError(
      `cannot read /etc/group for the group names of --outbound-owner-groups (${(error as Error).message}); give GIDs`,
    );
  }
  return withGroupIds(config, parseGroupFile(text));
}

/** The whole run, by mode. Returns the exit code. */
export async function runMeshInit(given: Config, shellDeps: Deps, log: Logger): Promise<number> {
  const deps = scopedTo(given, shellDeps);
  // Group names count for validation too: it traces the rules for its own identity.
  const withGroups = await readGroups(given, deps);
  const config = given.skipRuleApply ? withGroups : await readResolvers(withGroups, deps, log);
  const scope = await familiesFor(config, deps);
  const { families } = scope;
  if (config.skipRuleApply) {
    await runValidation(config, families, deps, log);
    return EXIT_OK;
  }
  const engine = engineFor(config, deps, log);
  if (config.dryRun) return printDryRun(config, families, engine, deps, log);
  if (config.mode === 'check') return checkDrift(config, scope, engine, deps, log);
  if (config.mode === 'cleanup') return cleanUp(config, families, engine, deps, log);
  return applyRules(config, scope, engine, deps, log);
}
