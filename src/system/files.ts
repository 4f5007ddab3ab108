/**
 * Files of the node's CNI setup, for mesh-init-cni install: atomic writes, so that a
 * runtime reading a configuration (or starting the plugin) never sees half a file.
 */
import { watch as watchDir } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { InstallFs } from '../commands/cni/install.js';

async function modeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return undefined;
  }
}

export const nodeFs: InstallFs = {
  listDir: async (dir) => {
    try {
      return await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  },
  readFile: (path) => readFile(path, 'utf8'),
  writeFile: async (path, text, mode) => {
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${dirname(path)}/.${path.slice(dirname(path).length + 1)}.mesh-init-${process.pid}`;
    await writeFile(temporary, text, { mode });
    await chmod(temporary, (await modeOf(path)) ?? mode);
    await rename(temporary, path);
  },
  remove: (path) => rm(path, { force: true }),
  watch: (dir, onChange) => {
    const watcher = watchDir(dir, () => onChange());
    return () => watcher.close();
  },
};
