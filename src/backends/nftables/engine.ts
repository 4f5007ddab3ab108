import type { Config } from '../../config/config.js';
import type { Family } from '../../config/net.js';
import { BackendError } from '../../errors.js';
import type { Changes } from '../changes.js';
import type { Applied, Engine, EngineDeps, Preview } from '../engine.js';
import { findDrift } from './drift.js';
import { applyScript, listRuleset, NftRejectedError } from './nft.js';
import { type NftPlan, planInet, renderScript } from './render.js';
import { parseRuleset } from './state.js';

const LABEL = 'the native nftables backend';

/**
 * Whether a script failed only on its TPROXY check: an earlier run's TPROXY chain is
 * there. Any other failing line, or another reason, is a real rejection.
 */
function foundEarlierTproxy(error: unknown, plan: NftPlan, script: string): boolean {
  const guard = plan.tproxyGuard;
  if (!(error instanceof NftRejectedError) || guard === undefined) return false;
  const line = script.split('\n').indexOf(`create chain inet ${guard.table} ${guard.chain}`) + 1;
  return (
    line > 0 &&
    error.lines.length > 0 &&
    error.lines.every((n) => n === line) &&
    /File exists/.test(error.stderr)
  );
}

/**
 * Native nftables (`--native-nftables`): mesh-init's inet tables, both families,
 * replaced by one `nft -f` transaction. The script does not depend on what is live,
 * so apply reads nothing, a failure changes nothing (there is nothing to put back,
 * and nothing is registered in `changes`), and racing runs each replace the whole
 * tables in turn, ending in the state of one of them.
 */
export class NftablesEngine implements Engine {
  constructor(private readonly deps: EngineDeps) {}

  private logBackend(): void {
    this.deps.log.info('backend', 'backend: native nftables (set by --native-nftables)', {
      backend: 'native-nftables',
    });
  }

  private feed(config: Config, script: string): Promise<void> {
    return applyScript(this.deps.run, script, { retry: config.retry, sleep: this.deps.sleep });
  }

  /** --dry-run: the script as apply feeds it first; reads nothing, needs no privileges. */
  async preview(config: Config, families: readonly Family[]): Promise<Preview> {
    this.logBackend();
    return { text: renderScript(planInet(config, families)), tproxyLeft: [] };
  }

  /**
   * One transaction. Where the plan has no TPROXY, the script checks that no earlier
   * run left TPROXY's chain; if one did, the transaction fails on that check alone,
   * changing nothing, and the script without it follows: the caller then removes
   * TPROXY's policy route, which the new rules no longer need.
   */
  async apply(
    config: Config,
    families: readonly Family[],
    _changes: Changes,
    beforeChanges: () => Promise<void>,
  ): Promise<Applied> {
    this.logBackend();
    await beforeChanges();
    const plan = planInet(config, families);
    const script = renderScript(plan);
    try {
      await this.feed(config, script);
      return { label: LABEL, reads: 0, tproxyLeft: [] };
    } catch (error) {
      if (!foundEarlierTproxy(error, plan, script)) throw error;
    }
    this.deps.log.info(
      'apply',
      'an earlier run used TPROXY: its tables are replaced without it, and its policy route goes',
    );
    await this.feed(config, renderScript(plan, false));
    return { label: LABEL, reads: 0, tproxyLeft: [...families] };
  }

  /** One transaction deletes mesh-init's tables, whichever are there. */
  async cleanup(config: Config, families: readonly Family[], _changes: Changes): Promise<void> {
    this.logBackend();
    await this.feed(config, renderScript(planInet(config, families)));
  }

  async check(config: Config, families: readonly Family[]): Promise<string[]> {
    this.logBackend();
    const plan = planInet(config, families);
    const text = await listRuleset(this.deps.run, { retry: config.retry, sleep: this.deps.sleep });
    const names = [...plan.tables.map((t) => t.name), ...plan.removed.map((t) => t.name)];
    let live: ReturnType<typeof parseRuleset>;
    try {
      live = parseRuleset(text, names);
    } catch (error) {
      throw new BackendError(`cannot read the nft ruleset: ${(error as Error).message}`);
    }
    return findDrift(plan, live);
  }
}
