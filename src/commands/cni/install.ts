/**
 * `mesh-init-cni install|uninstall`: puts the plugin on a node and chains it after
 * the primary network's plugins, or takes it away. With --watch, install keeps it
 * chained: the primary network's agent (Calico, Cilium, flannel …) rewrites its file
 * when it likes, without mesh-init-cni.
 */

import { strictParser } from '../../config/parser.js';
import { UsageError } from '../../errors.js';
import {
  CONF_EXTENSIONS,
  type ConfFile,
  hasPlugin,
  listName,
  pluginEntry,
  primaryFile,
  withoutPlugin,
  withPlugin,
  wrapperScript,
} from './conflist.js';
import { CniError } from './protocol.js';
import { BLOCK_KEY, PLUGIN_TYPE, parseSettings } from './settings.js';

export interface InstallFs {
  readonly listDir: (dir: string) => Promise<string[]>;
  readonly readFile: (path: string) => Promise<string>;
  /** Atomic (a temporary file renamed over it); an existing file keeps its mode. */
  readonly writeFile: (path: string, text: string, mode: number) => Promise<void>;
  readonly remove: (path: string) => Promise<void>;
  /** Calls back on any change in the directory; returns how to stop. */
  readonly watch: (dir: string, onChange: () => void) => () => void;
}

export interface InstallDeps {
  readonly fs: InstallFs;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The running bundle, copied to --lib-dir. */
  readonly bundle: string;
  /** The Node that runs the plugin unless --node says otherwise. */
  readonly node: string;
  /** Ends --watch (SIGTERM, SIGINT). */
  readonly stopped: Promise<void>;
}

interface InstallArgs {
  readonly command: 'install' | 'uninstall';
  readonly confDir: string;
  readonly binDir: string;
  readonly libDir: string;
  readonly node: string | undefined;
  readonly pluginConfig: string | undefined;
  readonly watch: boolean;
}

const BUNDLE_NAME = 'mesh-init-cni.cjs';

async function parseArgs(argv: readonly string[]): Promise<InstallArgs | { help: string }> {
  const parser = strictParser(
    argv,
    'mesh-init-cni',
    "mesh-init-cni install [options]     chain the plugin after the node's primary CNI network\nmesh-init-cni uninstall [options]   take it out again, and its files\n\nWithout a command, with CNI_COMMAND set, mesh-init-cni is the CNI plugin itself.",
  )
    .command('install', 'chain the plugin')
    .command('uninstall', 'take the plugin out')
    .option('conf-dir', {
      type: 'string',
      default: '/etc/cni/net.d',
      describe: "the node's CNI configuration directory",
    })
    .option('bin-dir', {
      type: 'string',
      default: '/opt/cni/bin',
      describe: "the runtime's CNI plugin directory",
    })
    .option('lib-dir', {
      type: 'string',
      default: '/opt/mesh-init',
      describe: 'where the plugin bundle is copied',
    })
    .option('node', {
      type: 'string',
      describe: 'the Node (absolute path, on the node) that runs the plugin [default: this one]',
    })
    .option('plugin-config', {
      type: 'string',
      describe: `a JSON file with the plugin's "${BLOCK_KEY}" block (docs/cni.md)`,
    })
    .option('watch', {
      type: 'boolean',
      describe: 'stay, and chain the plugin again whenever the files change',
    });
  const args = parser.parseSync() as Record<string, unknown>;
  const command = Array.isArray(args._) ? args._[0] : undefined;
  if (args.help === true || command === undefined) return { help: await parser.getHelp() };
  if (command !== 'install' && command !== 'uninstall') {
    throw new UsageError(`unknown command "${String(command)}": expected install or uninstall`);
  }
  const path = (name: string): string => {
    const value = args[name];
    if (typeof value !== 'string' || !value.startsWith('/')) {
      throw new UsageError(`invalid --${name}: expected an absolute path, got "${String(value)}"`);
    }
    return value.replace(/\/+$/, '') || '/';
  };
  if (args.node !== undefined) path('node');
  if (command === 'uninstall' && (args['plugin-config'] !== undefined || args.watch === true)) {
    throw new UsageError('invalid uninstall: --plugin-config and --watch only go with install');
  }
  return {
    command,
    confDir: path('conf-dir'),
    binDir: path('bin-dir'),
    libDir: path('lib-dir'),
    node: typeof args.node === 'string' ? args.node : undefined,
    pluginConfig: typeof args['plugin-config'] === 'string' ? args['plugin-config'] : undefined,
    watch: args.watch === true,
  };
}

/** The block from --plugin-config, checked as the plugin will check it on every call. */
async function readBlock(
  fs: InstallFs,
  file: string | undefined,
): Promise<Record<string, unknown>> {
  if (file === undefined) return {};
  let block: unknown;
  try {
    block = JSON.parse(await fs.readFile(file));
  } catch (error) {
    throw new UsageError(`invalid --plugin-config ${file}: ${(error as Error).message}`);
  }
  try {
    parseSettings({ [BLOCK_KEY]: block });
  } catch (error) {
    if (error instanceof CniError)
      throw new UsageError(`invalid --plugin-config ${file}: ${error.message}`);
    throw error;
  }
  return block as Record<string, unknown>;
}

async function confFiles(fs: InstallFs, dir: string): Promise<ConfFile[]> {
  const names = (await fs.listDir(dir)).filter((name) =>
    CONF_EXTENSIONS.some((ext) => name.endsWith(ext)),
  );
  const files: ConfFile[] = [];
  for (const name of names) {
    try {
      files.push({ name, text: await fs.readFile(`${dir}/${name}`) });
    } catch {
      // Gone between the listing and the read: the next change wakes us again.
    }
  }
  return files;
}

type Outcome = 'chained' | 'kept' | 'no primary';

/**
 * One pass: the plugin last in the primary file, and in no other. Writes only what
 * changes, so that its own writes do not keep a watcher busy.
 */
export async function chainPlugin(
  fs: InstallFs,
  confDir: string,
  entry: Readonly<Record<string, unknown>>,
  log: (line: string) => void,
): Promise<Outcome> {
  const files = await confFiles(fs, confDir);
  const primary = primaryFile(files);
  if (primary === undefined) return 'no primary';
  for (const other of files) {
    if (other.name === primary.name || !hasPlugin(other)) continue;
    await fs.writeFile(`${confDir}/${other.name}`, withoutPlugin(other), 0o644);
    log(`took ${PLUGIN_TYPE} out of ${other.name}: ${primary.name} is the primary network now`);
  }
  const text = withPlugin(primary, pluginEntry(entry));
  const name = listName(primary.name);
  if (text === primary.text && name === primary.name) return 'kept';
  await fs.writeFile(`${confDir}/${name}`, text, 0o644);
  if (name !== primary.name) await fs.remove(`${confDir}/${primary.name}`);
  log(`chained ${PLUGIN_TYPE} after the plugins of ${name}`);
  return 'chained';
}

async function install(args: InstallArgs, deps: InstallDeps): Promise<number> {
  const { fs } = deps;
  const log = (line: string) => deps.stderr(`mesh-init-cni: ${line}\n`);
  const block = await readBlock(fs, args.pluginConfig);
  const bundle = `${args.libDir}/${BUNDLE_NAME}`;
  await fs.writeFile(bundle, await fs.readFile(deps.bundle), 0o644);
  await fs.writeFile(
    `${args.binDir}/${PLUGIN_TYPE}`,
    wrapperScript(args.node ?? deps.node, bundle),
    0o755,
  );
  log(`installed ${args.binDir}/${PLUGIN_TYPE} (runs ${bundle})`);
  const first = await chainPlugin(fs, args.confDir, block, log);
  if (first === 'kept') log(`already chained in the primary network of ${args.confDir}`);
  if (!args.watch) {
    if (first === 'no primary') {
      throw new UsageError(
        `no CNI network configuration in ${args.confDir} to chain the plugin to (--watch waits for one)`,
      );
    }
    return 0;
  }
  if (first === 'no primary') log(`waiting for a CNI network configuration in ${args.confDir}`);
  await watchAndChain(fs, args.confDir, block, log, deps.stopped);
  return 0;
}

/** --watch: every change in the directory, a pass (changes coming in a burst, one pass). */
async function watchAndChain(
  fs: InstallFs,
  confDir: string,
  block: Readonly<Record<string, unknown>>,
  log: (line: string) => void,
  stopped: Promise<void>,
): Promise<void> {
  let pending: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const pass = () => {
    pending = pending
      .then(() => chainPlugin(fs, confDir, block, log))
      .then(
        () => undefined,
        (error: unknown) =>
          log(`chaining failed, trying again on the next change: ${(error as Error).message}`),
      );
  };
  const stop = fs.watch(confDir, () => {
    clearTimeout(timer);
    timer = setTimeout(pass, 100);
  });
  // A change between the first pass and the watch would otherwise go unseen.
  pass();
  await stopped;
  stop();
  clearTimeout(timer);
  await pending;
  log('stopped watching; the plugin stays chained (mesh-init-cni uninstall takes it out)');
}

async function uninstall(args: InstallArgs, deps: InstallDeps): Promise<number> {
  const { fs } = deps;
  const log = (line: string) => deps.stderr(`mesh-init-cni: ${line}\n`);
  for (const file of await confFiles(fs, args.confDir)) {
    if (!hasPlugin(file)) continue;
    await fs.writeFile(`${args.confDir}/${file.name}`, withoutPlugin(file), 0o644);
    log(`took ${PLUGIN_TYPE} out of ${file.name}`);
  }
  // The configuration first: no runtime may start a plugin that is no longer there.
  for (const path of [`${args.binDir}/${PLUGIN_TYPE}`, `${args.libDir}/${BUNDLE_NAME}`]) {
    await fs.remove(path);
  }
  log(`removed ${args.binDir}/${PLUGIN_TYPE} and ${args.libDir}/${BUNDLE_NAME}`);
  return 0;
}

export async function runCniInstall(argv: readonly string[], deps: InstallDeps): Promise<number> {
  const args = await parseArgs(argv);
  if ('help' in args) {
    deps.stdout(`${args.help}\n`);
    return 0;
  }
  return args.command === 'install' ? install(args, deps) : uninstall(args, deps);
}
