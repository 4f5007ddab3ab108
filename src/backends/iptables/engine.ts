import type { Backend, Config } from '../../config/config.js';
import type { Family } from '../../config/net.js';
import { MeshInitError, RestoreError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { planTables } from '../../plan/plan.js';
import { chainName, OWNED_CHAINS, TABLES, type Table, type TablePlan } from '../../plan/rules.js';
import type { Changes } from '../changes.js';
import type { Applied, Engine, EngineDeps, Preview } from '../engine.js';
import { type Choice, chooseBackend, type Probe } from './binaries.js';
import { findDrift } from './drift.js';
import { liveHooks, liveOwnedChains, planCleanup, planTransaction, planUndo } from './reconcile.js';
import { renderRestore } from './render.js';
import { restore, save, saveOrThrow } from './restore.js';
import {
  countRules,
  EMPTY_STATE,
  parseTableState,
  type TableState,
  tableSection,
} from './state.js';
import type { Transaction } from './transaction.js';

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
function planFamilies(
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

/** Families whose read mangle table had TPROXY's chain while the plan has none. */
function tproxyLeft(config: Config, families: readonly Family[], live: Live | undefined): Family[] {
  const planned = (family: Family) =>
    planTables(config, family).some((plan) => plan.chains.includes('TPROXY'));
  if (config.mode === 'cleanup' || live === undefined) return [];
  const tproxy = chainName(config.chainPrefix, 'TPROXY');
  return families.filter(
    (family) => !planned(family) && stateOf(live, family, 'mangle').chains.includes(tproxy),
  );
}

function backendLine(log: Logger, choice: Choice): void {
  log.info('backend', `backend: ${choice.backend} (${choice.reason})`, {
    backend: choice.backend,
    reason: choice.reason,
  });
}

/**
 * The iptables backends (nft and legacy): one `*-restore --noflush` transaction per
 * table and family, planned from what `*-save` shows.
 */
export class IptablesEngine implements Engine {
  constructor(private readonly deps: EngineDeps) {}

  /**
   * Finds the backend and reads every table of each family with it. Once a run has
   * chosen its backend (`chosen`), every later read sticks to it.
   */
  private async readLive(config: Config, families: readonly Family[], chosen?: Choice) {
    const { run } = this.deps;
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
    if (families.includes('ipv6')) {
      saved.set('ipv6', await saveOrThrow(run, choice.backend, 'ipv6'));
    }
    return { choice, saved };
  }

  /**
   * --dry-run needs no privileges: when the live rules cannot be read, the text is
   * the one for a namespace without mesh-init rules, and the log says so.
   */
  async preview(config: Config, families: readonly Family[]): Promise<Preview> {
    let live: Live | undefined;
    try {
      live = await this.readLive(config, families);
      backendLine(this.deps.log, live.choice);
    } catch (error) {
      if (!(error instanceof MeshInitError)) throw error;
      this.deps.log.info(
        'dry-run',
        `dry-run: live rules not read (${error.message}); showing the rules for a namespace without mesh-init rules`,
      );
    }
    const text = planFamilies(config, families, live).map(renderRestore).join('');
    return { text, tproxyLeft: tproxyLeft(config, families, live) };
  }

  /**
   * With a given backend the first try needs no read: it is planned for a namespace
   * without mesh-init's jumps, and its -X/-N lines make it fail, changing nothing,
   * where there are some (a re-run, or another run got there first); then the table
   * is read and the plan made anew. Backend auto has to read both backends first anyway.
   */
  async apply(
    config: Config,
    families: readonly Family[],
    changes: Changes,
    beforeChanges: () => Promise<void>,
  ): Promise<Applied> {
    let live = config.backend === 'auto' ? await this.readLive(config, families) : undefined;
    const choice = live?.choice ?? {
      backend: config.backend as Backend,
      reason: 'set by --iptables-backend',
    };
    backendLine(this.deps.log, choice);
    await beforeChanges();
    const tables = new TableChanges(config, choice.backend, this.deps, changes);
    // Tries planned from a table that was read; the unread first try does not count.
    let reads = live === undefined ? 0 : 1;
    for (;;) {
      try {
        for (const tx of planFamilies(config, families, live)) await tables.apply(tx, live);
        break;
      } catch (error) {
        const stale = error instanceof RestoreError && error.stale;
        if (!stale || reads > config.retry.maxRetries) throw error;
      }
      // The table was not what the text was planned for: read it and plan again. Runs
      // that collided tend to collide again in step; a random pause breaks the step.
      if (live !== undefined) {
        await this.deps.sleep(Math.round(this.deps.random() * config.retry.intervalMs));
      }
      live = await this.readLive(config, families, choice);
      reads++;
    }
    return {
      label: `the ${choice.backend} backend`,
      reads,
      tproxyLeft: tproxyLeft(config, families, live),
    };
  }

  /** One transaction per table and family removes mesh-init's chains and jumps. */
  async cleanup(config: Config, families: readonly Family[], changes: Changes): Promise<void> {
    const live = await this.readLive(config, families);
    backendLine(this.deps.log, live.choice);
    const tables = new TableChanges(config, live.choice.backend, this.deps, changes);
    for (const tx of planFamilies(config, families, live)) await tables.apply(tx, live);
  }

  /** Each table's drift; a table holding mesh-init's chains but planned empty shows them all. */
  async check(config: Config, families: readonly Family[]): Promise<string[]> {
    const live = await this.readLive(config, families);
    backendLine(this.deps.log, live.choice);
    return tablesToReconcile(config, families, live).flatMap(({ family, table, plan, state }) =>
      findDrift(plan ?? { family, table, chains: [], rules: [] }, state, config.chainPrefix),
    );
  }
}

/**
 * Applies transactions and registers, the first time each table of a family is
 * changed, how to put it back: its section as read before (restored without
 * --noflush), or, where it was changed before any read, the undo of what was added.
 */
class TableChanges {
  private readonly registered = new Set<string>();

  constructor(
    private readonly config: Config,
    private readonly backend: Backend,
    private readonly deps: EngineDeps,
    private readonly changes: Changes,
  ) {}

  async apply(tx: Transaction, live: Live | undefined): Promise<void> {
    await this.restore(tx.family, renderRestore(tx), true);
    const key = `${tx.family} ${tx.table}`;
    if (this.registered.has(key)) return;
    this.registered.add(key);
    const saved = live?.saved.get(tx.family);
    // Never read, the table is put back by removing what this run added: its jumps
    // and mesh-init's chains (any there before held no jumps, so no rules in use).
    const [text, noflush, done] =
      saved === undefined
        ? [
            renderRestore(planUndo(tx)),
            true,
            `${key} was put back: this run's jumps and mesh-init's chains were removed`,
          ]
        : [tableSection(saved, tx.table), false, `${key} was put back as it was`];
    this.changes.added({
      kind: 'rules',
      undo: () => this.restore(tx.family, text, noflush),
      done,
      failed: (why) => `putting ${key} back failed too, it keeps this run's rules: ${why}`,
    });
  }

  private restore(family: Family, text: string, noflush: boolean): Promise<void> {
    const { retry } = this.config;
    return restore(this.deps.run, this.backend, family, text, {
      retry,
      sleep: this.deps.sleep,
      noflush,
    });
  }
}
