/**
 * Running in another network namespace than the program's own (Istio's
 * --network-namespace, and the CNI plugin's pod namespace): every program is started
 * through nsenter, so the rest of mesh-init does not know the difference.
 */
import { statfsSync } from 'node:fs';
import { BackendError } from '../errors.js';
import { describeFailure, type RunCommand } from './exec.js';
import type { AddressFamilies } from './interfaces.js';

/** A program's name → the file to start; names stay names where PATH is to be trusted. */
export type LocateProgram = (name: string) => string;

const byName: LocateProgram = (name) => name;

/**
 * util-linux's nsenter takes any namespace path: /var/run/netns/NAME, /proc/PID/ns/net.
 * `locate` names nsenter and the program it starts: nsenter finds a bare name on its
 * own PATH, which a CNI runtime may not give at all, so the plugin passes absolute paths.
 */
export function inNamespace(
  run: RunCommand,
  path: string,
  locate: LocateProgram = byName,
): RunCommand {
  return (file, args, input) =>
    run(locate('nsenter'), [`--net=${path}`, '--', locate(file), ...args], input);
}

/** statfs(2)'s f_type of nsfs, the file system of namespace files. */
const NSFS_MAGIC = 0x6e736673;

/**
 * Whether the path is a live network namespace: a bind mount of one (/var/run/netns/X)
 * or /proc/PID/ns/net of a running process. An unmounted leftover file is not.
 */
export function isNamespaceFile(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The families the namespace has a global address of (not loopback, not link-local):
 * what `ip` lists with scope global, ULA addresses included as for our own namespace,
 * lo's left out (mesh-init's own ::6 there is scope global too).
 */
export async function addressFamiliesIn(run: RunCommand): Promise<AddressFamilies> {
  const args = ['-o', 'addr', 'show', 'scope', 'global'];
  const shown = await run('ip', args);
  if (shown.exitCode !== 0) {
    throw new BackendError(
      `cannot read the namespace's addresses (ip ${args.join(' ')}): ${describeFailure(shown)}`,
    );
  }
  const lines = shown.stdout.split('\n').filter((line) => !/^\d+:\s+lo\s/.test(line));
  return {
    ipv4: lines.some((line) => /\sinet\s/.test(line)),
    ipv6: lines.some((line) => /\sinet6\s/.test(line)),
  };
}
