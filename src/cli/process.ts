import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InjectDeps } from '../commands/inject/command.js';
import type { Deps } from '../commands/run.js';
import { validateCapture } from '../commands/validate.js';
import { runCommand } from '../system/exec.js';
import { addressFamilies, localAddresses } from '../system/interfaces.js';
import { probeConnection } from '../system/probe.js';
import { main } from './cli.js';

/** The effects main() is given in a real process: programs, the terminal, the clock, the files. */
export function processDeps(): Deps & { readonly readInput: InjectDeps['readInput'] } {
  return {
    run: runCommand,
    addressFamilies: () => addressFamilies(networkInterfaces()),
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    sleep: (ms) => sleep(ms),
    now: () => new Date(),
    random: Math.random,
    readResolvConf: () => readFile('/etc/resolv.conf', 'utf8'),
    readGroupFile: () => readFile('/etc/group', 'utf8'),
    readInput: (filename) => (filename === '-' ? text(process.stdin) : readFile(filename, 'utf8')),
    validate: (config, families) =>
      validateCapture(config, families, {
        identity: { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 },
        addresses: () => localAddresses(networkInterfaces()),
        probe: (probe) => probeConnection(probe),
        clock: () => Date.now(),
      }),
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
