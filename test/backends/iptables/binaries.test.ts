/**
 * Which iptables backend a pod uses: the one already holding rules, else nft, else
 * legacy (Kubernetes' iptables-wrapper rule), and the binaries of each.
 */
import { describe, expect, it } from 'vitest';
import { binaryFor, chooseBackend, type Probe } from '../../../src/backends/iptables/binaries.js';
import type { Backend } from '../../../src/config/config.js';
import type { Family } from '../../../src/config/net.js';
import { BackendError } from '../../../src/errors.js';

const ok = (backend: Backend, rules: number): Probe => ({ backend, ok: true, rules });
const failed = (backend: Backend, error: string): Probe => ({ backend, ok: false, error });

describe('chooseBackend', () => {
  it.each<[string, Probe[], Backend, string]>([
    [
      'legacy holds more rules',
      [ok('nft', 0), ok('legacy', 5)],
      'legacy',
      'its tables already hold 5 rules',
    ],
    [
      'nft holds more rules',
      [ok('nft', 7), ok('legacy', 2)],
      'nft',
      'its tables already hold 7 rules',
    ],
    [
      'a tie prefers nft',
      [ok('nft', 3), ok('legacy', 3)],
      'nft',
      'its tables already hold 3 rules',
    ],
    [
      'no rules at all: nft',
      [ok('nft', 0), ok('legacy', 0)],
      'nft',
      'no rules in either backend, nft preferred',
    ],
    [
      'nft fails: legacy',
      [failed('nft', 'iptables-nft-save exit 1: no nf_tables'), ok('legacy', 0)],
      'legacy',
      'the only backend that works (nft failed)',
    ],
    [
      'nft fails, legacy holds rules',
      [failed('nft', 'iptables-nft-save not found'), ok('legacy', 4)],
      'legacy',
      'its tables already hold 4 rules',
    ],
    [
      'legacy fails: nft',
      [ok('nft', 0), failed('legacy', 'iptables-legacy-save exit 3: no ip_tables')],
      'nft',
      'the only backend that works (legacy failed)',
    ],
  ])('%s', (_name, probes, backend, reason) => {
    expect(chooseBackend(probes)).toEqual({ backend, reason });
  });

  it('both fail: a BackendError naming both binaries and their errors', () => {
    const probes = [
      failed('nft', 'iptables-nft-save not found'),
      failed('legacy', 'iptables-legacy-save exit 3: modprobe: FATAL: Module ip_tables not found'),
    ];
    let thrown: unknown;
    try {
      chooseBackend(probes);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(BackendError);
    const error = thrown as BackendError;
    expect(error.exitCode).toBe(3);
    // Each probe's error already starts with its binary (iptables.ts save()): named once.
    expect(error.message).toBe(
      'no usable iptables backend (tried iptables-nft-save not found; iptables-legacy-save exit 3: modprobe: FATAL: Module ip_tables not found)',
    );
  });
});

describe('binaryFor', () => {
  it.each<[Backend, Family, 'save' | 'restore', string]>([
    ['legacy', 'ipv4', 'save', 'iptables-legacy-save'],
    ['legacy', 'ipv4', 'restore', 'iptables-legacy-restore'],
    ['legacy', 'ipv6', 'save', 'ip6tables-legacy-save'],
    ['legacy', 'ipv6', 'restore', 'ip6tables-legacy-restore'],
    ['nft', 'ipv4', 'save', 'iptables-nft-save'],
    ['nft', 'ipv4', 'restore', 'iptables-nft-restore'],
    ['nft', 'ipv6', 'save', 'ip6tables-nft-save'],
    ['nft', 'ipv6', 'restore', 'ip6tables-nft-restore'],
  ])('%s %s %s → %s', (backend, family, tool, binary) => {
    expect(binaryFor(backend, family, tool)).toBe(binary);
  });
});
