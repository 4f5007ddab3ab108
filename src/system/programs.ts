/**
 * Programs by absolute path, for a caller that cannot trust PATH: a CNI runtime may
 * start its plugins with no environment at all (`env -i`), and nsenter then finds
 * nothing in /usr/sbin. The directories are the system's own, searched in the order
 * a root shell's PATH has them; the runtime's PATH is never read.
 */
import { accessSync, constants, statSync } from 'node:fs';
import type { LocateProgram } from './netns.js';

const SYSTEM_DIRECTORIES: readonly string[] = [
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
];

/** The first executable `dir/name`; a name already holding a "/" as it is; else the name. */
export function locateIn(
  directories: readonly string[],
  isExecutable: (path: string) => boolean,
): LocateProgram {
  const found = new Map<string, string>();
  return (name) => {
    if (name.includes('/')) return name;
    const known = found.get(name);
    if (known !== undefined) return known;
    const path = directories.map((dir) => `${dir}/${name}`).find(isExecutable);
    // Not found: the name, so that the failure reads "nsenter: not found" as before.
    const located = path ?? name;
    found.set(name, located);
    return located;
  };
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Programs from the system's directories, checked on the file system. */
export const locateSystemProgram: LocateProgram = locateIn(SYSTEM_DIRECTORIES, isExecutableFile);
