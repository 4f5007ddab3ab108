import { existsSync } from 'node:fs';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCniInstall } from '../commands/cni/install.js';
import { runCni } from '../commands/cni/plugin.js';
import { MeshInitError } from '../errors.js';
import { runCommand } from '../system/exec.js';
import { nodeFs } from '../system/files.js';
import { kubePodReader } from '../system/kube.js';
import { isNamespaceFile } from '../system/netns.js';
import { locateSystemProgram } from '../system/programs.js';

// mesh-init-cni: the CNI plugin (started by the container runtime, CNI_COMMAND set),
// and `mesh-init-cni install|uninstall` for the node. The only module of this program
// that touches `process`. Until a command settles, the exit is a failure: a plugin
// that never finishes must not let a pod start uncaptured.
process.exitCode = 1;

async function plugin(): Promise<number> {
  const stdin = await text(process.stdin);
  return runCni(process.env, stdin, {
    run: runCommand,
    locate: locateSystemProgram,
    stdout: (out) => process.stdout.write(out),
    stderr: (err) => process.stderr.write(err),
    sleep: (ms) => sleep(ms),
    now: () => new Date(),
    random: Math.random,
    podReader: kubePodReader,
    isNamespace: isNamespaceFile,
    fileExists: existsSync,
  });
}

async function manage(argv: readonly string[]): Promise<number> {
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  try {
    return await runCniInstall(argv, {
      fs: nodeFs,
      stdout: (out) => process.stdout.write(out),
      stderr: (err) => process.stderr.write(err),
      bundle: process.argv[1] ?? '',
      node: process.execPath,
      stopped,
    });
  } catch (error) {
    const known = error instanceof MeshInitError;
    process.stderr.write(
      `mesh-init-cni: ${known ? '' : 'internal error: '}${(error as Error).message}\n`,
    );
    return known ? error.exitCode : 1;
  }
}

const argv = process.argv.slice(2);
// The runtime starts the plugin with CNI_COMMAND and no arguments.
const command =
  argv.length === 0 && process.env.CNI_COMMAND !== undefined ? plugin() : manage(argv);
void command.then((code) => {
  process.exitCode = code;
  // --watch's listeners would otherwise keep the process alive.
  if (argv[0] === 'install') process.exit(code);
});
