/** Group names in the owner-group filters become GIDs from the init container's /etc/group. */
import { describe, expect, it } from 'vitest';
import { namesGroups, parseGroupFile, withGroupIds } from '../../src/config/groups.js';
import { UsageError } from '../../src/errors.js';
import { configFrom } from '../config-from.js';

const GROUP_FILE = [
  'root:x:0:',
  'wheel:x:10:alice,bob',
  '# a comment',
  'broken line',
  'java:x:1001:',
  'java:x:2002:',
  'nonumber:x:abc:',
  '',
].join('\n');

describe('parseGroupFile', () => {
  it('reads name and GID, the first of a name wins, other lines are skipped', () => {
    expect([...parseGroupFile(GROUP_FILE)]).toEqual([
      ['root', 0],
      ['wheel', 10],
      ['java', 1001],
    ]);
  });
});

describe('withGroupIds', () => {
  const groups = parseGroupFile(GROUP_FILE);

  it.each<[string[], Record<string, string>, unknown]>([
    [['--outbound-owner-groups', 'java,202,wheel'], {}, { kind: 'only', groups: [1001, 202, 10] }],
    [['--outbound-owner-groups-exclude', 'root'], {}, { kind: 'all', except: [0] }],
    // A name and its GID both given: one rule.
    [['--outbound-owner-groups', 'java,1001'], {}, { kind: 'only', groups: [1001] }],
    [[], { ISTIO_OUTBOUND_OWNER_GROUPS: 'wheel' }, { kind: 'only', groups: [10] }],
  ])('%j %j → %j', async (argv, env, ownerGroups) => {
    const config = await configFrom(argv, env);
    expect(namesGroups(config)).toBe(true);
    const resolved = withGroupIds(config, groups);
    expect(resolved.ownerGroups).toEqual(ownerGroups);
    expect(namesGroups(resolved)).toBe(false);
  });

  it.each<[string[], string]>([
    [
      ['--outbound-owner-groups', 'java,nobody'],
      `invalid --outbound-owner-groups: group "nobody" is not in the init container's /etc/group; give its GID`,
    ],
    [
      ['--outbound-owner-groups-exclude', 'ftp'],
      `invalid --outbound-owner-groups-exclude: group "ftp" is not in the init container's /etc/group; give its GID`,
    ],
  ])('%j: an unknown name is a usage error naming the flag', async (argv, message) => {
    const config = await configFrom(argv);
    expect(() => withGroupIds(config, groups)).toThrow(new UsageError(message));
  });

  it('GIDs alone need no /etc/group', async () => {
    expect(namesGroups(await configFrom(['--outbound-owner-groups', '1,2']))).toBe(false);
    expect(namesGroups(await configFrom([]))).toBe(false);
  });
});
