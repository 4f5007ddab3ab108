import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Deps } from '../apply.js';
import { main } from '../cli.js';
import { hasGlobalIpv6 } from '../interfaces.js';
import { runCommand } from '../iptables.js';
import { validateRedirect } from '../validate.js';

/** The effects main() is given in a real process: programs, the terminal, the clock, the files. */
export function processDeps(): Deps {
  return {
    run: runCommand,
    hasGlobalIpv6: () => hasGlobalIpv6(networkInterfaces()),
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    sleep: (ms) => sleep(ms),
    now: () => new Date(),
    random: Math.random,
    readResolvConf: () => readFile('/etc/resolv.conf', 'utf8'),
    validate: (config) =>
      validateRedirect(config, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }),
  };
}

/**
 * Runs main() as this process: argv without node and the script. Until main()
 * settles the exit is a failure: a run that never finishes must not let the pod
 * start uncaptured. Shared by the plain entry (main.ts) and the snapshot's.
 *
 * Once main() has settled nothing is left to do (every program it started has
 * been waited for, and on Linux stdout and stderr are written synchronously, to
 * files, pipes and terminals alike), so the process exits at once rather than
 * letting Node tear its heap down: ~20-30 ms of a run in the image (docs/startup.md).
 */
export async function runProcess(argv: readonly string[]): Promise<void> {
  process.exitCode = 1;
  process.exit(await main(argv, process.env, processDeps()));
}
