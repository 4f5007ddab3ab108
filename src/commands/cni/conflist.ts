/**
 * The node's CNI configuration files, as the runtime picks them (the first valid one
 * by name wins, as libcni's ConfFiles and the kubelet sort them), and the edits that
 * chain mesh-init-cni after the primary network's plugins and take it out again.
 * Pure: text in, text out.
 */
import { PLUGIN_TYPE } from './settings.js';

/** The extensions libcni reads. */
export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

export interface ConfFile {
  readonly name: string;
  readonly text: string;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parse(text: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A file the runtime would load: a list with plugins, or a single plugin with a type. */
function pluginsOf(file: ConfFile): Json[] | undefined {
  if (!CONF_EXTENSIONS.some((ext) => file.name.endsWith(ext))) return undefined;
  const conf = parse(file.text);
  if (conf === undefined) return undefined;
  if (Array.isArray(conf.plugins)) {
    const plugins = conf.plugins.filter(isObject);
    return plugins.length === conf.plugins.length && plugins.length > 0 ? plugins : undefined;
  }
  // A .conflist must be a list; a single-plugin file needs its type.
  if (file.name.endsWith('.conflist') || typeof conf.type !== 'string') return undefined;
  return [conf];
}

/** The file the runtime uses: the first valid one by name (byte order, as Go's sort.Strings). */
export function primaryFile(files: readonly ConfFile[]): ConfFile | undefined {
  return [...files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .find((file) => pluginsOf(file) !== undefined);
}

export function hasPlugin(file: ConfFile): boolean {
  return (pluginsOf(file) ?? []).some((plugin) => plugin.type === PLUGIN_TYPE);
}

function print(conf: Json): string {
  return `${JSON.stringify(conf, null, 2)}\n`;
}

/**
 * The file with mesh-init-cni as the last plugin, configured as `entry` says; an
 * entry already there is replaced. A single-plugin file becomes a list (it must then
 * be named .conflist, see listName). Unchanged text when nothing changes, so that a
 * watcher is not woken by a write of the same content.
 */
export function withPlugin(file: ConfFile, entry: Readonly<Json>): string {
  const conf = parse(file.text);
  const plugins = pluginsOf(file);
  if (conf === undefined || plugins === undefined) {
    throw new Error(`${file.name} is not a CNI network configuration`);
  }
  const others = plugins.filter((plugin) => plugin.type !== PLUGIN_TYPE);
  const list: Json = Array.isArray(conf.plugins)
    ? { ...conf, plugins: [...others, entry] }
    : listFromSingle(conf, entry);
  const same = JSON.stringify(parse(file.text)) === JSON.stringify(list);
  return same ? file.text : print(list);
}

/** A .conf's single plugin, as the first of a list (its name and version move to the list). */
function listFromSingle(conf: Json, entry: Readonly<Json>): Json {
  const { cniVersion, name, ...plugin } = conf;
  return {
    cniVersion: cniVersion ?? '0.3.1',
    name: name ?? 'k8s-pod-network',
    plugins: [plugin, entry],
  };
}

/** The name a file must have once it is a list: a .conf becomes .conflist. */
export function listName(name: string): string {
  return name.endsWith('.conf') ? `${name}list` : name;
}

/** The file without mesh-init-cni; unchanged text when it had none. */
export function withoutPlugin(file: ConfFile): string {
  const conf = parse(file.text);
  if (conf === undefined || !Array.isArray(conf.plugins) || !hasPlugin(file)) return file.text;
  const plugins = conf.plugins.filter(
    (plugin) => !(isObject(plugin) && plugin.type === PLUGIN_TYPE),
  );
  return print({ ...conf, plugins });
}

/** The plugin's entry in a list: its type and its block. */
export function pluginEntry(block: Readonly<Json>): Json {
  return { type: PLUGIN_TYPE, 'mesh-init': block };
}

/**
 * The script the runtime starts as the plugin: Node and the bundle by absolute path,
 * as a runtime may start plugins with no PATH at all.
 */
export function wrapperScript(node: string, bundle: string): string {
  const quote = (path: string) => `'${path.replaceAll("'", `'\\''`)}'`;
  return `#!/bin/sh\n# mesh-init's CNI plugin (written by mesh-init-cni install)\nexec ${quote(node)} ${quote(bundle)} "$@"\n`;
}
