import { type Choice, chooseBackend, type Probe } from './backend.js';
import type { Backend, Config } from './config.js';
import { MeshInitError } from './errors.js';
import { addPassthroughAddress, type RunCommand, restore, save, saveOrThrow } from './iptables.js';
import { INBOUND_PASSTHROUGH, planRules } from './plan.js';
import { planTransaction } from './reconcile.js';
import { renderRestore } from './render.js';
import type { Family } from './rules.js';
import { countRules, EMPTY_STATE, type NatState, parseNatState } from './state.js';

export interface Deps {
  readonly run: RunCommand;
  /** Whether the pod has an IPv6 address that is neither loopback nor link-local. */
  readonly hasGlobalIpv6: () => boolean;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export interface FamilyText {
  readonly family: Family;
  readonly text: string;
  readonly rules: number;
}

export function familiesFor(config: Config, hasGlobalIpv6: () => boolean): Family[] {
  const ipv6 = config.ipv6 === 'auto' ? hasGlobalIpv6() : config.ipv6;
  return ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
}

interface Live {
  readonly choice: Choice;
  readonly states: ReadonlyMap<Family, NatState>;
}

/** Finds the backend and reads the live nat table of each family with it. */
async function readLive(config: Config, families: Family[], run: RunCommand): Promise<Live> {
  let choice: Choice;
  const states = new Map<Family, NatState>();
  if (config.backend === 'auto') {
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
    const chosen = dumps[order.indexOf(choice.backend)];
    states.set('ipv4', parseNatState(chosen?.stdout ?? ''));
  } else {
    choice = { backend: config.backend, reason: 'set by --iptables-backend' };
    states.set('ipv4', parseNatState(await saveOrThrow(run, choice.backend, 'ipv4')));
  }
  if (families.includes('ipv6')) {
    states.set('ipv6', parseNatState(await saveOrThrow(run, choice.backend, 'ipv6')));
  }
  return { choice, states };
}

/** Config + live state → the exact restore text of each family. Pure. */
export function renderFamilies(
  config: Config,
  families: readonly Family[],
  states: ReadonlyMap<Family, NatState>,
): FamilyText[] {
  return families.map((family) => {
    const tx = planTransaction(
      planRules(config, family),
      states.get(family) ?? EMPTY_STATE,
      config.chainPrefix,
    );
    return { family, text: renderRestore(tx), rules: tx.rules.length };
  });
}

/**
 * The whole run: read what is live, compute each family's text once, then either
 * print it (--dry-run) or feed that same string to *-restore.
 */
export async function runMeshInit(config: Config, deps: Deps): Promise<void> {
  const families = familiesFor(config, deps.hasGlobalIpv6);

  if (config.dryRun) {
    // Dry-run needs no privileges: when the live rules cannot be read, show the
    // text for a namespace without mesh-init rules, and say so.
    let states: ReadonlyMap<Family, NatState> = new Map();
    try {
      states = (await readLive(config, families, deps.run)).states;
    } catch (error) {
      if (!(error instanceof MeshInitError)) throw error;
      deps.stderr(
        `mesh-init: dry-run: live rules not read (${(error as Error).message}); showing the rules for a namespace without mesh-init rules\n`,
      );
    }
    for (const { text } of renderFamilies(config, families, states)) deps.stdout(text);
    if (families.includes('ipv6')) {
      deps.stderr(
        `mesh-init: dry-run: would also run: ip -6 addr replace ${INBOUND_PASSTHROUGH.ipv6.address}/128 dev lo\n`,
      );
    }
    return;
  }

  const live = await readLive(config, families, deps.run);
  const texts = renderFamilies(config, families, live.states);
  // Before any restore, so that its failure leaves nothing applied.
  if (families.includes('ipv6')) {
    await addPassthroughAddress(deps.run, INBOUND_PASSTHROUGH.ipv6.address);
  }
  for (const { family, text } of texts) {
    await restore(deps.run, live.choice.backend, family, text);
  }
  const applied = texts.map((t) => `${t.family} (${t.rules} rules)`).join(' and ');
  const ipv6 = families.includes('ipv6')
    ? ''
    : `; ipv6 not captured (${config.ipv6 === false ? '--ipv6 false' : 'no global IPv6 address'})`;
  deps.stderr(
    `mesh-init: applied ${applied} with the ${live.choice.backend} backend (${live.choice.reason})${ipv6}\n`,
  );
}
