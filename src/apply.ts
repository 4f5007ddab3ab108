import { type Choice, chooseBackend, type Probe } from './backend.js';
import type { Backend, Config } from './config.js';
import { findDrift } from './drift.js';
import { EXIT_DRIFT, EXIT_OK, MeshInitError, RestoreError, ValidationError } from './errors.js';
import { addPassthroughAddress, type RunCommand, restore, save, saveOrThrow } from './iptables.js';
import type { Logger } from './log.js';
import { INBOUND_PASSTHROUGH, planRules } from './plan.js';
import { planCleanup, planTransaction, planUndo, type Transaction } from './reconcile.js';
import { renderRestore } from './render.js';
import type { Family } from './rules.js';
import { countRules, EMPTY_STATE, type NatState, parseNatState } from './state.js';
import type { ValidationResult } from './validate.js';

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
}

export function familiesFor(config: Config, hasGlobalIpv6: () => boolean): Family[] {
  const ipv6 = config.ipv6 === 'auto' ? hasGlobalIpv6() : config.ipv6;
  return ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
}

/** What is live, per family: parsed, and as saved (to put it back if a later family fails). */
interface Live {
  readonly choice: Choice;
  readonly states: ReadonlyMap<Family, NatState>;
  readonly saved: ReadonlyMap<Family, string>;
}

/**
 * Finds the backend and reads the live nat table of each family with it. Once a
 * run has chosen its backend (`chosen`), every later read sticks to it.
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
    const dumps = await Promise.all(order.map((b) => save(run, b, 'ipv4', 'all')));
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
  return { choice, ...parsed(saved) };
}

function parsed(saved: Map<Family, string>) {
  const states = new Map<Family, NatState>();
  for (const [family, text] of saved) states.set(family, parseNatState(text));
  return { states, saved };
}

/** The `*nat` section of a dump; an empty nat table where the dump had none. */
export function natSection(dump: string): string {
  const lines = dump.split('\n');
  const start = lines.findIndex((line) => line.trim() === '*nat');
  if (start < 0) return '*nat\nCOMMIT\n';
  const end = lines.findIndex(
    (line, i) => i > start && (line.trim() === 'COMMIT' || line.startsWith('*')),
  );
  const section = lines.slice(start, end < 0 ? undefined : end).filter((line) => line.trim());
  return `${[...section, 'COMMIT'].join('\n')}\n`;
}

/** Config + live state → each family's transaction. Pure. */
export function planFamilies(
  config: Config,
  families: readonly Family[],
  states: ReadonlyMap<Family, NatState>,
): Transaction[] {
  return families.map((family) => {
    const live = states.get(family) ?? EMPTY_STATE;
    return config.mode === 'cleanup'
      ? planCleanup(family, live, config.chainPrefix)
      : planTransaction(planRules(config, family), live, config.chainPrefix);
  });
}

/**
 * What this run changed, per family, and how to put each back: the nat section as
 * read before this run first changed it (restored without --noflush), or, where it
 * was changed before any read, the undo of what was added. Every failure after a
 * change goes through putBack, so a pod is never left half-captured.
 */
class Changes {
  private readonly baselines = new Map<Family, { text: string; noflush: boolean; undo: boolean }>();

  constructor(
    private readonly config: Config,
    private readonly backend: Backend,
    private readonly deps: Deps,
  ) {}

  /** Applies one family's transaction and remembers how to put it back. */
  async apply(tx: Transaction, live: Live | undefined): Promise<void> {
    await restore(this.deps.run, this.backend, tx.family, renderRestore(tx), this.options(true));
    if (this.baselines.has(tx.family)) return;
    const saved = live?.saved.get(tx.family);
    this.baselines.set(
      tx.family,
      saved === undefined
        ? { text: renderRestore(planUndo(tx)), noflush: true, undo: true }
        : { text: natSection(saved), noflush: false, undo: false },
    );
  }

  /** Puts back every family this run changed, then throws `error` with what happened. */
  async putBack(error: unknown): Promise<never> {
    if (this.baselines.size === 0) throw error;
    const notes: string[] = [];
    let stuck = false;
    for (const [family, { text, noflush, undo }] of this.baselines) {
      try {
        await restore(this.deps.run, this.backend, family, text, this.options(noflush));
        // Never read, the table is put back by removing what this run added: its
        // jumps and mesh-init's chains (any there before held no jumps, so no rules in use).
        notes.push(
          undo
            ? `${family} was put back: this run's jumps and mesh-init's chains were removed`
            : `${family} was put back as it was`,
        );
      } catch (rollback) {
        stuck = true;
        const why = (rollback as Error).message.split('\n').join('\n    ');
        notes.push(`putting ${family} back failed too, it keeps this run's rules: ${why}`);
      }
    }
    // Same error, so the same exit code, with what was put back; but a family that
    // could not be put back has rules applied, which only exit 4 may say.
    const first = error instanceof Error ? error.message : String(error);
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

function driftOf(config: Config, families: Family[], live: Live): string[] {
  return families.flatMap((family) =>
    findDrift(
      planRules(config, family),
      live.states.get(family) ?? EMPTY_STATE,
      config.chainPrefix,
    ),
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
  let states: ReadonlyMap<Family, NatState> = new Map();
  try {
    const live = await readLive(config, families, deps.run);
    states = live.states;
    backendLine(log, live.choice);
  } catch (error) {
    if (!(error instanceof MeshInitError)) throw error;
    log.info(
      'dry-run',
      `dry-run: live rules not read (${error.message}); showing the rules for a namespace without mesh-init rules`,
    );
  }
  for (const tx of planFamilies(config, families, states)) deps.stdout(renderRestore(tx));
  if (families.includes('ipv6') && config.mode === 'apply') {
    log.info(
      'dry-run',
      `dry-run: would also run: ip -6 addr replace ${INBOUND_PASSTHROUGH.ipv6.address}/128 dev lo`,
    );
  }
  log.info('dry-run', `dry-run: printed the ${families.join(' and ')} text; nothing applied`, {
    families,
  });
  return EXIT_OK;
}

/** --check: the difference between live and planned rules, exit 5 when there is one. */
async function checkDrift(config: Config, families: Family[], deps: Deps, log: Logger) {
  const live = await readLive(config, families, deps.run);
  backendLine(log, live.choice);
  const drift = driftOf(config, families, live);
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

/** --cleanup: one transaction per family removes mesh-init's chains and jumps. */
async function cleanUp(config: Config, families: Family[], deps: Deps, log: Logger) {
  const live = await readLive(config, families, deps.run);
  backendLine(log, live.choice);
  const changes = new Changes(config, live.choice.backend, deps);
  try {
    for (const tx of planFamilies(config, families, live.states)) await changes.apply(tx, live);
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
  // Tries planned from a table that was read; the unread first try does not count.
  let planned = live === undefined ? 0 : 1;
  for (;;) {
    const txs = planFamilies(config, families, live?.states ?? new Map());
    try {
      for (const tx of txs) await changes.apply(tx, live);
      // Rules now in place, whether this run appended them or kept them.
      const rules = families.map((family) => planRules(config, family).rules.length);
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
  if (config.validate) await runValidation(config, deps, log);
  return EXIT_OK;
}

/** The whole run, by mode. Returns the exit code. */
export async function runMeshInit(config: Config, deps: Deps, log: Logger): Promise<number> {
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
