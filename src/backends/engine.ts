import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import type { Logger } from '../log.js';
import type { RunCommand } from '../system/exec.js';
import type { Changes } from './changes.js';

/** What an engine needs from the shell. */
export interface EngineDeps {
  readonly run: RunCommand;
  readonly sleep: (ms: number) => Promise<void>;
  /** In [0, 1): spreads retries of runs that collided. */
  readonly random: () => number;
  readonly log: Logger;
}

export interface Preview {
  /** Exactly what apply (or cleanup) would feed the kernel for what is live. */
  readonly text: string;
  /** Families whose live rules use TPROXY where the plan does not: its route goes too. */
  readonly tproxyLeft: readonly Family[];
}

export interface Applied {
  /** How the backend is named in the log, e.g. "the nft backend". */
  readonly label: string;
  /** How many times the live rules were read to plan. */
  readonly reads: number;
  readonly tproxyLeft: readonly Family[];
}

/**
 * A backend: a renderer of the backend-neutral plan plus a small engine that reads
 * what is live, applies, cleans up and compares. Each mode reads what it needs
 * and logs the backend it uses; every change it makes is registered in `changes`,
 * so that the caller can put it back.
 */
export interface Engine {
  preview(config: Config, families: readonly Family[]): Promise<Preview>;
  /** `beforeChanges` runs once what must be read before any change was read. */
  apply(
    config: Config,
    families: readonly Family[],
    changes: Changes,
    beforeChanges: () => Promise<void>,
  ): Promise<Applied>;
  cleanup(config: Config, families: readonly Family[], changes: Changes): Promise<void>;
  /** The difference between live and planned rules; empty when they agree. */
  check(config: Config, families: readonly Family[]): Promise<string[]>;
}
