/**
 * Running in another network namespace than the program's own (Istio's
 * --network-namespace, and the CNI plugin's pod namespace): every program is started
 * through nsenter, so the rest of mesh-init does not know the difference.
 */
import { BackendError } from '../errors.js';
import { describeFailure, type RunCommand } from './exec.js';
import type { AddressFamilies } from './interfaces.js';

/** util-linux's nsenter takes any namespace path: /var/run/netns/NAME, /proc/PID/ns/net. */
export function inNamespace(run: RunCommand, path: string): RunCommand {
  return (file, args, input) => run('nsenter', [`--net=${path}`, '--', file, ...args], input);
}

/**
 * The families the namespace has a global address of (not loopback, not link-local):
 * what `ip` lists with scope global, ULA addresses included as for our own namespace.
 */
export async function addressFamiliesIn(run: RunCommand): Promise<AddressFamilies> {
  const args = ['-o', 'addr', 'show', 'scope', 'global'];
  const shown = await run('ip', args);
  if (shown.exitCode !== 0) {
    throw new BackendError(
      `cannot read the namespace's addresses (ip ${args.join(' ')}): ${describeFailure(shown)}`,
    );
  }
  const lines = shown.stdout.split('\n');
  return {
    ipv4: lines.some((line) => /\sinet\s/.test(line)),
    ipv6: lines.some((line) => /\sinet6\s/.test(line)),
  };
}
