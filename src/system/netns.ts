/**
 * Running in another network namespace than the program's own (Istio's
 * --network-namespace, and the CNI plugin's pod namespace): every program is started
 * through nsenter, so the rest of mesh-init does not know the difference.
 */
import { BackendError } from '../errors.js';
import { describeFailure, type RunCommand } from './exec.js';

/** util-linux's nsenter takes any namespace path: /var/run/netns/NAME, /proc/PID/ns/net. */
export function inNamespace(run: RunCommand, path: string): RunCommand {
  return (file, args, input) => run('nsenter', [`--net=${path}`, '--', file, ...args], input);
}

/**
 * Whether the namespace has an IPv6 address that is neither loopback nor link-local:
 * what `ip` lists with scope global (ULA addresses included, as for our own namespace).
 */
export async function hasGlobalIpv6In(run: RunCommand): Promise<boolean> {
  const args = ['-6', '-o', 'addr', 'show', 'scope', 'global'];
  const shown = await run('ip', args);
  if (shown.exitCode !== 0) {
    throw new BackendError(
      `cannot read the IPv6 addresses (ip ${args.join(' ')}): ${describeFailure(shown)}`,
    );
  }
  return shown.stdout.trim() !== '';
}
