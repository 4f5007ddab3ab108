import type { Backend } from '../../config/config.js';
import type { Family } from '../../config/net.js';
import { BackendError } from '../../errors.js';

type Tool = 'save' | 'restore';

/** e.g. `ip6tables-legacy-restore`: always the explicit variant, never whatever `iptables` points at. */
export function binaryFor(backend: Backend, family: Family, tool: Tool): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-${tool}`;
}

export type Probe =
  | { readonly backend: Backend; readonly ok: true; readonly rules: number }
  | { readonly backend: Backend; readonly ok: false; readonly error: string };

export interface Choice {
  readonly backend: Backend;
  readonly reason: string;
}

/**
 * Picks the backend the namespace already uses, as Kubernetes' iptables-wrapper
 * does: the one holding more rules (two backends in one namespace bypass each
 * other), else nft, else legacy. Probes are given in that preference order.
 */
export function chooseBackend(probes: readonly Probe[]): Choice {
  const usable = probes.filter((p): p is Extract<Probe, { ok: true }> => p.ok);
  if (usable.length === 0) {
    const tried = probes.map((p) => (p.ok ? '' : p.error)).join('; ');
    throw new BackendError(`no usable iptables backend (tried ${tried})`);
  }
  const most = Math.max(...usable.map((p) => p.rules));
  const chosen = usable.find((p) => p.rules === most) ?? usable[0];
  if (chosen === undefined) throw new Error('unreachable: usable is not empty');
  const reason =
    most > 0
      ? `its tables already hold ${most} rules`
      : usable.length > 1
        ? 'no rules in either backend, nft preferred'
        : `the only backend that works (${probes.find((p) => !p.ok && 'error' in p)?.backend} failed)`;
  return { backend: chosen.backend, reason };
}
