import { type Choice, chooseBackend, type Probe } from '../backends/iptables/binaries.js';
import { findDrift } from '../backends/iptables/drift.js';
import {
  liveHooks,
  liveOwnedChains,
  planCleanup,
  planTransaction,
  planUndo,
  type Transaction,
} from '../backends/iptables/reconcile.js';
import { renderRestore } from '../backends/iptables/render.js';
import { restore, save, saveOrThrow } from '../backends/iptables/restore.js';
import {
  countRules,
  EMPTY_STATE,
  parseTableState,
  type TableState,
  tableSection,
} from '../backends/iptables/state.js';
import { type Backend, type Config, withResolvers } from '../config/config.js';
import type { Family } from '../config/net.js';
import { parseResolvConf } from '../config/resolv.js';
import {
  BackendError,
  EXIT_DRIFT,
  EXIT_OK,
  MeshInitError,
  RestoreError,
  ValidationError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { INBOUND_PASSTHROUGH, planTables } from '../plan/plan.js';
import { chainName, OWNED_CHAINS, TABLES, type Table, type TablePlan } from '../plan/rules.js';
import type { RunCommand } from '../system/exec.js';
import {
  addLocalRoute,
  addPassthroughAddress,
  deleteLocalRule,
  hasPassthroughAddress,
  localRouteCommands,
  readLocalRoute,
  removeLocalRoute,
} from '../system/ip.js';
import type { ValidationResult } from '../system/probe.js';

export interface Deps {
  readonly run: RunCommand;
  /** Whether the pod has an IPv6 address that is neither loopback nor link-local. */
  readonly hasGlobalIpv6: () => boolean;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => Date;
  /** --run-validation: probes the capture in this namespace. */
  readonly validate: (config: Config) => Promise<ValidationResult>;
  /** In [0, 1): spreads retries of runs that collided. */
  readonly random: () => number;
  /** The pod's /etc/resolv.conf, for --redirect-dns. */
  readonly readResolvConf: () => Promise<string>;
}

export function familiesFor(config: Config, hasGlobalIpv6: () => boolean): Family[] {
  const ipv6 = config.ipv6 === 'auto' ? hasGlobalIpv6() : config.ipv6;
  return ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
}

/** What is live: each family's whole dump, to plan from and to put tables back as they were. */
interface Live {
  readonly choice: Choice;
  readonly saved: ReadonlyMap<Family, string>;
}

/** One table's live state; empty where nothing was read. */
function stateOf(live: Live | undefined, family: Family, table: Table): TableState {
  const saved = live?.saved.get(family);
  return saved === undefined ? EMPTY_STATE : parseTableState(saved, table);
}

/**
 * Finds the backend and reads every table of each family with it. Once a run has
 * chosen its backend (`chosen`), every later read sticks to it.
 */
async function readLive(
  config: Config,
  families: Family[],
  run: RunCommand,
  chosen?: Choice,
): Promise<Live> {
  let choice: Choice;
  const saved = new Map<Family, string>();
  if (chosen !== undefined) {
    choice = chosen;
    saved.set('ipv4', await saveOrThrow(run, choice.backend, 'ipv4'));
  } else if (config.backend === 'auto') {
    // The whole IPv4 dump of each backend both picks the backend and gives the state.
    const order: Backend[] = ['nft', 'legacy'];
    const dumps = await Promise.all(order.map((b) => save(run, b, 'ipv4')));
    const probes = dumps.map(
      (dump, i): Probe =>
        dump.ok
          ? { backend: order[i] as Backend, ok: true, rules: countRules(dump.stdout) }
          : { backend: order[i] as Backend, ok: false, error: dump.failure },
    );
    choice = chooseBackend(probes);
    saved.set('ipv4', dumps[order.indexOf(choice.backend)]?.stdout ?? '');
  } else {
    choice = { backend: config.backend, reason: 'set by --iptables-backend' };
    saved.set('ipv4', await saveOrThrow(run, choice.backend, 'ipv4'));
  }
  if (families.includes('ipv6')) saved.set('ipv6', await saveOrThrow(run, choice.backend, 'ipv6'));
  return { choice, saved };
}

/** Whether mesh-init has chains or jumps in a live table. */
function holdsOwned(live: TableState, prefix: string, table: Table): boolean {
  return (
    liveOwnedChains(live, prefix, table).length > 0 ||
    liveHooks(live, prefix, OWNED_CHAINS[table]).length > 0
  );
}

/** A table a run deals with: its plan (none where mesh-init's chains must go) and what is live. */
interface TableWork {
  readonly family: Family;
  readonly table: Table;
  readonly plan: TablePlan | undefined;
  readonly state: TableState;
}

/**
 * The tables a run deals with, per family: those the config plans (none for
 * cleanup), nat always, and every other table that holds something of mesh-init's
 * (a re-run with fewer features, or cleanup, clears it).
 */
function tablesToReconcile(
  config: Config,
  families: readonly Family[],
  live: Live | undefined,
): TableWork[] {
  return families.flatMap((family) => {
    const plans = config.mode === 'cleanup' ? [] : planTables(config, family);
    return TABLES.flatMap((table): TableWork[] => {
      const state = stateOf(live, family, table);
      const plan = plans.find((p) => p.table === table);
      const wanted = plan !== undefined || table === 'nat';
      return wanted || holdsOwned(state, config.chainPrefix, table)
        ? [{ family, table, plan, state }]
        : [];
    });
  });
}

/** Config + live state → the transactions, a table of a family each. Pure. */
export function planFamilies(
  config: Config,
  families: readonly Family[],
  live: Live | undefined,
): Transaction[] {
  const prefix = config.chainPrefix;
  return tablesToReconcile(config, families, live).map(({ family, table, plan, state }) =>
    plan === undefined
      ? planCleanup(family, table, state, prefix)
      : planTransaction(plan, state, prefix),
  );
}

interface Baseline {
  readonly family: Family;
  readonly table: Table;
  readonly text: string;
  readonly noflush: boolean;
  readonly undo: boolean;
}

/**
 * What this run changed, per table of each family, and how to put each back: the
 * table's section as read before this run first changed it (restored without
 * --noflush), or, where it was changed before any read, the undo of what was
 * added. Every failure after a change goes through putBack, so a pod is never left
 * half-captured.
 */
class Changes {
  private readonly baselines = new Map<string, Baseline>();
  /** Changes outside iptables (TPROXY's ip rule), taken back by putBack too, after the tables. */
  private readonly undos: { note: string; undo: () => Promise<void> }[] = [];

  constructor(
    private readonly config: Config,
    private readonly backend: Backend,
    private readonly deps: Deps,
  ) {}

  /** Applies one table's transaction and remembers how to put that table back. */
  async apply(tx: Transaction, live: Live | undefined): Promise<void> {
    await restore(this.deps.run, this.backend, tx.family, renderRestore(tx), this.options(true));
    const key = `${tx.family} ${tx.table}`;
    if (this.baselines.has(key)) return;
    const saved = live?.saved.get(tx.family);
    const { family, table } = tx;
    this.baselines.set(
      key,
      saved === undefined
        ? { family, table, text: renderRestore(planUndo(tx)), noflush: true, undo: true }
        : { family, table, text: tableSection(saved, table), noflush: false, undo: false },
    );
  }

  /** Remembers a change made outside iptables, how to take it back, and what to say then. */
  added(note: string, undo: () => Promise<void>): void {
    this.undos.push({ note, undo });
  }

  /** Puts back every table this run changed, then the ip changes, and throws `error` with what happened. */
  async putBack(error: unknown): Promise<never> {
    if (this.baselines.size === 0 && this.undos.length === 0) throw error;
    const notes: string[] = [];
    let stuck = false;
    for (const [key, { family, text, noflush, undo }] of this.baselines) {
      try {
        await restore(this.deps.run, this.backend, family, text, this.options(noflush));
        // Never read, the table is put back by removing what this run added: its
        // jumps and mesh-init's chains (any there before held no jumps, so no rules in use).
        notes.push(
          undo
            ? `${key} was put back: this run's jumps and mesh-init's chains were removed`
            : `${key} was put back as it was`,
        );
      } catch (rollback) {
        stuck = true;
        const why = (rollback as Error).message.split('\n').join('\n    ');
        notes.push(`putting ${key} back failed too, it keeps this run's rules: ${why}`);
      }
    }
    // After the tables: the marking rules and the route they need come and go
    // together, so where a table keeps this run's rules the ip changes stay too.
    for (const { note, undo } of stuck ? [] : this.undos) {
      try {
        await undo();
        notes.push(note);
      } catch (failure) {
        notes.push(`${note}: failed too: ${(failure as Error).message}`);
      }
    }
    // Same error, so the same exit code, with what was put back; but a family that
    // could not be put back has rules applied, which only exit 4 may say.
    const first = error instanceof Error ? error.message : String(error);
    if (stuck && this.undos.length > 0) {
      notes.push('the ip rule and route stay as this run left them, for the rules it keeps');
    }
    const message = [first, ...notes.map((note) => `  ${note}`)].join('\n');
    if (stuck) throw new RestoreError(message);
    if (!(error instanceof Error)) throw new Error(message);
    error.message = message;
    throw error;
  }

  private options(noflush: boolean) {
    return { retry: this.config.retry, sleep: this.deps.sleep, noflush };
  }
}

/** Each table's drift; a table holding mesh-init's chains but planned empty shows them all. */
function driftOf(config: Config, families: Family[], live: Live): string[] {
  return tablesToReconcile(config, families, live).flatMap(({ family, table, plan, state }) =>
    findDrift(plan ?? { family, table, chains: [], rules: [] }, state, config.chainPrefix),
  );
}

async function runValidation(config: Config, deps: Deps, log: Logger): Promise<void> {
  const result = await deps.validate(config);
  if (!result.ok) throw new ValidationError(`validation failed: ${result.detail}`);
  log.info('validated', `validation passed: ${result.detail}`);
}

function backendLine(log: Logger, choice: Choice): void {
  log.info('backend', `backend: ${choice.backend} (${choice.reason})`, {
    backend: choice.backend,
    reason: choice.reason,
  });
}

function ipv6Note(config: Config, families: readonly Family[]): string {
  if (families.includes('ipv6')) return '';
  return `; ipv6 not captured (${config.ipv6 === false ? '--ipv6 false' : 'no global IPv6 address'})`;
}

/**
 * --dry-run prints each family's text for what is live. It needs no privileges:
 * when the live rules cannot be read, it shows the text for a namespace without
 * mesh-init rules, and says so.
 */
async function printDryRun(config: Config, families: Family[], deps: Deps, log: Logger) {
  let live: Live | undefined;
  try {
    live = await readLive(config, families, deps.run);
    backendLine(log, live.choice);
  } catch (error) {
    if (!(error instanceof MeshInitError)) throw error;
    log.info(
      'dry-run',
      `dry-run: live rules not read (${error.message}); showing the rules for a namespace without mesh-init rules`,
    );
  }
  for (const tx of planFamilies(config, families, live)) deps.stdout(renderRestore(tx));
  const commands = [
    ...(families.includes('ipv6') && config.mode === 'apply'
      ? [`ip -6 addr replace ${INBOUND_PASSTHROUGH.ipv6.address}/128 dev lo`]
      : []),
    ...(config.mode === 'cleanup'
      ? families.flatMap((family) => localRouteCommands(family, config.tproxy, 'remove'))
      : usesTproxy(config)
        ? families.flatMap((family) => localRouteCommands(family, config.tproxy, 'add'))
        : staleRouteFamilies(config, families, live).flatMap((family) =>
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
async function checkDrift(config: Config, families: Family[], deps: Deps, log: Logger) {
  const live = await readLive(config, families, deps.run);
  backendLine(log, live.choice);
  const drift = [
    ...driftOf(config, families, live),
    ...(await routingDrift(config, families, deps)),
  ];
  if (drift.length === 0) {
    log.info('check', `check: the live rules are the planned ones${ipv6Note(config, families)}`, {
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

/** --cleanup: one transaction per table and family removes mesh-init's chains and jumps, then TPROXY's route. */
async function cleanUp(config: Config, families: Family[], deps: Deps, log: Logger) {
  const live = await readLive(config, families, deps.run);
  backendLine(log, live.choice);
  const changes = new Changes(config, live.choice.backend, deps);
  try {
    for (const tx of planFamilies(config, families, live)) await changes.apply(tx, live);
    // After the chains that mark packets are gone, so TPROXY never runs without its
    // route; a failure here puts the chains, and what was removed of the route, back.
    for (const family of families) {
      const outcome = await removeLocalRoute(deps.run, family, config.tproxy, () =>
        changes.added(`the ${family} TPROXY rule and route were added back`, () =>
          addLocalRoute(deps.run, family, config.tproxy, () => {}),
        ),
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
 * Applies the rules. With a given backend the first try needs no read: it is planned
 * for a namespace without mesh-init's jumps, and its -X/-N lines make it fail,
 * changing nothing, where there are some (a re-run, or another run got there
 * first); then the table is read and the plan made anew. Backend auto has to read
 * both backends first anyway.
 */
async function applyRules(config: Config, families: Family[], deps: Deps, log: Logger) {
  let live = config.backend === 'auto' ? await readLive(config, families, deps.run) : undefined;
  const choice = live?.choice ?? {
    backend: config.backend as Backend,
    reason: 'set by --iptables-backend',
  };
  backendLine(log, choice);

  // Before any restore, so that its failure leaves nothing applied.
  if (families.includes('ipv6')) {
    await addPassthroughAddress(deps.run, INBOUND_PASSTHROUGH.ipv6.address);
  }
  const changes = new Changes(config, choice.backend, deps);
  if (usesTproxy(config)) {
    for (const family of families) {
      try {
        await addLocalRoute(deps.run, family, config.tproxy, () =>
          changes.added(
            `the ${family} ip rule fwmark ${config.tproxy.mark} this run added was deleted again`,
            () => deleteLocalRule(deps.run, family, config.tproxy),
          ),
        );
      } catch (error) {
        await changes.putBack(error);
      }
    }
  }
  // Tries planned from a table that was read; the unread first try does not count.
  let planned = live === undefined ? 0 : 1;
  for (;;) {
    const txs = planFamilies(config, families, live);
    try {
      for (const tx of txs) await changes.apply(tx, live);
      // Rules now in place, whether this run appended them or kept them.
      const rules = families.map((family) =>
        planTables(config, family).reduce((sum, plan) => sum + plan.rules.length, 0),
      );
      const applied = families.map((f, i) => `${f} (${rules[i]} rules)`).join(' and ');
      log.info(
        'applied',
        `applied ${applied} with the ${choice.backend} backend${ipv6Note(config, families)}`,
        { families, rules, reads: planned },
      );
      break;
    } catch (error) {
      const stale = error instanceof RestoreError && error.stale;
      if (!stale || planned > config.retry.maxRetries) await changes.putBack(error);
    }
    // The table was not what the text was planned for: read it and plan again. Runs
    // that collided tend to collide again in step; a random pause breaks the step.
    try {
      if (live !== undefined) {
        await deps.sleep(Math.round(deps.random() * config.retry.intervalMs));
      }
      live = await readLive(config, families, deps.run, choice);
    } catch (error) {
      await changes.putBack(error);
    }
    planned++;
  }
  await dropStaleLocalRoute(config, families, live, deps, log);
  if (config.validate) await runValidation(config, deps, log);
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
  live: Live | undefined,
  deps: Deps,
  log: Logger,
): Promise<void> {
  for (const family of staleRouteFamilies(config, families, live)) {
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

/** Families whose read mangle table had TPROXY's chain while the plan has none. */
function staleRouteFamilies(
  config: Config,
  families: readonly Family[],
  live: Live | undefined,
): Family[] {
  if (usesTproxy(config) || live === undefined) return [];
  const tproxy = chainName(config.chainPrefix, 'TPROXY');
  return families.filter((family) => stateOf(live, family, 'mangle').chains.includes(tproxy));
}

/** TPROXY marks inbound packets that a policy route then delivers to lo. */
function usesTproxy(config: Config): boolean {
  return config.inboundMode === 'tproxy' && config.inboundPorts.kind !== 'none';
}

/**
 * DNS capture reads the pod's resolvers: --redirect-dns captures DNS to them, and
 * with either mode a resolver on lo needs a conntrack zone rule of its own.
 */
async function readResolvers(config: Config, deps: Deps, log: Logger): Promise<Config> {
  if (config.dns.capture === 'off' || config.mode === 'cleanup') return config;
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

/** The whole run, by mode. Returns the exit code. */
export async function runMeshInit(given: Config, deps: Deps, log: Logger): Promise<number> {
  const config = given.skipRuleApply ? given : await readResolvers(given, deps, log);
  const families = familiesFor(config, deps.hasGlobalIpv6);
  if (config.skipRuleApply) {
    await runValidation(config, deps, log);
    return EXIT_OK;
  }
  if (config.dryRun) return printDryRun(config, families, deps, log);
  if (config.mode === 'check') return checkDrift(config, families, deps, log);
  if (config.mode === 'cleanup') return cleanUp(config, families, deps, log);
  return applyRules(config, families, deps, log);
}
