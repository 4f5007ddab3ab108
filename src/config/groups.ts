/**
 * Group names in the owner-group filters, resolved to GIDs from the init container's
 * /etc/group (what iptables-restore would look them up in, a step later and with a
 * vaguer message). The rules then hold numbers, as `iptables-save` shows them.
 */
import { UsageError } from '../errors.js';
import type { Config } from './config.js';

/** `name:password:GID:members` lines; others are skipped. */
export function parseGroupFile(text: string): ReadonlyMap<string, number> {
  const groups = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && /^\d+$/.test(gid) && !groups.has(name)) {
      groups.set(name, Number(gid));
    }
  }
  return groups;
}

/** Whether the owner-group filters name a group by name. */
export function namesGroups(config: Config): boolean {
  const { ownerGroups } = config;
  const ids = ownerGroups.kind === 'all' ? ownerGroups.except : ownerGroups.groups;
  return ids.some((id) => typeof id === 'string');
}

/** The config with every group name of the filters as its GID; an unknown name is a usage error. */
export function withGroupIds(config: Config, groups: ReadonlyMap<string, number>): Config {
  const { ownerGroups } = config;
  const flag = `--outbound-owner-groups${ownerGroups.kind === 'all' ? '-exclude' : ''}`;
  const resolve = (ids: readonly (number | string)[]) =>
    ids.map((id) => {
      if (typeof id === 'number') return id;
      const gid = groups.get(id);
      if (gid === undefined) {
        throw new UsageError(
          `invalid ${flag}: group "${id}" is not in the init container's /etc/group; give its GID`,
        );
      }
      return gid;
    });
  return {
    ...config,
    ownerGroups:
      ownerGroups.kind === 'all'
        ? { ...ownerGroups, except: [...new Set(resolve(ownerGroups.except))] }
        : { ...ownerGroups, groups: [...new Set(resolve(ownerGroups.groups))] },
  };
}
