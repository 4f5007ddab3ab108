/**
 * TPROXY's policy routing and lo's passthrough address, one `ip` helper at a time,
 * against the fake kernel's `ip` (which answers as Linux 6.x and iproute2 6.1 do).
 * apply.test.ts covers the same through main(); this pins each helper's contract.
 */
import { describe, expect, it } from 'vitest';
import type { TproxyRouting } from '../../src/config/config.js';
import type { Family } from '../../src/config/net.js';
import type { CommandResult, RunCommand } from '../../src/system/exec.js';
import {
  addLocalRoute,
  hasPassthroughAddress,
  readLocalRoute,
  removeLocalRoute,
} from '../../src/system/ip.js';
import { type Call, exited, FakeKernel, type IpSetup, notFound } from '../fake-system.js';

const ROUTING: TproxyRouting = { mark: 1337, routeTable: 133 };
const ROUTE = 'local default dev lo table 133';
const RULE = { mark: 1337, table: 133, pref: 32765 };

/** A runner over a fresh fake kernel, recording each call; `answer` overrides some. */
function ipOf(
  seed: Partial<Record<Family, IpSetup>> = {},
  answer: (call: Call, kernel: FakeKernel) => CommandResult | undefined = () => undefined,
) {
  const kernel = new FakeKernel({}, seed);
  const commands: string[] = [];
  const run: RunCommand = async (file, args) => {
    const call: Call = { file, args: [...args], input: undefined };
    commands.push([file, ...args].join(' '));
    const result = answer(call, kernel) ?? kernel.run(call);
    if (result === undefined) throw new Error(`no program ${file}`);
    return result;
  };
  /** Calls a hook, noting how many commands had run by then. */
  const heard: number[] = [];
  const hook = () => {
    heard.push(commands.length);
  };
  return { kernel, commands, run, heard, hook };
}

describe('addLocalRoute: the rule at pref 32765 unless listed, then the route', () => {
  it.each<[string, Partial<Record<Family, IpSetup>>, string | undefined, boolean]>([
    ['a fresh namespace: added, and heard of', {}, undefined, true],
    ['listed already: not added', { ipv4: { rules: [RULE] } }, undefined, false],
    // A racing run added it between the list and the add: there, but not this run's.
    ['File exists on add: there, not heard of', {}, 'RTNETLINK answers: File exists\n', false],
  ])('%s', async (_name, seed, addAnswer, added) => {
    const ip = ipOf(seed, (call, kernel) => {
      if (addAnswer === undefined || call.args[2] !== 'add') return undefined;
      kernel.run(call);
      return exited(2, addAnswer);
    });
    await addLocalRoute(ip.run, 'ipv4', ROUTING, ip.hook);
    expect(ip.heard).toEqual(added ? [2] : []);
    expect(ip.kernel.ipRules('ipv4')).toEqual(['32765: fwmark 0x539 lookup 133']);
    expect(ip.kernel.ipRoutes('ipv4')).toEqual([ROUTE]);
    expect(ip.commands.at(-1)).toBe('ip -4 route replace local default dev lo table 133');
  });

  it.each<[string, CommandResult, string]>([
    [
      'refused otherwise',
      exited(2, 'RTNETLINK answers: Operation not permitted\n'),
      "cannot add TPROXY's ip rule (ip -6 rule add fwmark 1337 lookup 133 pref 32765): exit 2: RTNETLINK answers: Operation not permitted",
    ],
    [
      'a stderr that only mentions a file',
      exited(1, 'Error: open /etc/iproute2/rt_tables: No such file or directory\n'),
      "cannot add TPROXY's ip rule (ip -6 rule add fwmark 1337 lookup 133 pref 32765): exit 1: Error: open /etc/iproute2/rt_tables: No such file or directory",
    ],
  ])('ip rule add %s: thrown, nothing heard, no route', async (_name, answer, message) => {
    const ip = ipOf({}, (call) => (call.args[2] === 'add' ? answer : undefined));
    await expect(addLocalRoute(ip.run, 'ipv6', ROUTING, ip.hook)).rejects.toThrow(message);
    expect(ip.heard).toEqual([]);
    expect(ip.kernel.ipRoutes('ipv6')).toEqual([]);
  });
});

describe('removeLocalRoute: looks first, says so before removing anything', () => {
  it.each<[string, Partial<Record<Family, IpSetup>>, 'removed' | 'absent', string[], boolean]>([
    [
      'rule and route',
      { ipv4: { rules: [RULE], routes: [ROUTE] } },
      'removed',
      ['ip -4 rule del fwmark 1337 lookup 133', 'ip -4 route del local default dev lo table 133'],
      true,
    ],
    [
      'two copies of the rule, no route',
      { ipv4: { rules: [RULE, { mark: 1337, table: 133 }] } },
      'removed',
      ['ip -4 rule del fwmark 1337 lookup 133', 'ip -4 rule del fwmark 1337 lookup 133'],
      true,
    ],
    [
      'the route alone',
      { ipv4: { routes: [ROUTE] } },
      'removed',
      ['ip -4 route del local default dev lo table 133'],
      true,
    ],
    ['neither', {}, 'absent', [], false],
    [
      "others' rule and route (another mark, another table)",
      {
        ipv4: {
          rules: [
            { mark: 7, table: 133 },
            { mark: 1337, table: 134 },
          ],
          routes: ['local default dev lo table 134'],
        },
      },
      'absent',
      [],
      false,
    ],
  ])('%s: %s', async (_name, seed, outcome, deletes, heard) => {
    const ip = ipOf(seed);
    expect(await removeLocalRoute(ip.run, 'ipv4', ROUTING, ip.hook)).toBe(outcome);
    // The rule listed and the table shown, then the hook, then the deletes.
    expect(ip.commands).toEqual([
      'ip -4 rule list fwmark 1337 table 133',
      'ip -4 route show table 133',
      ...deletes,
    ]);
    expect(ip.heard).toEqual(heard ? [2] : []);
    expect(ip.kernel.ipRules('ipv4').filter((r) => r.endsWith('0x539 lookup 133'))).toEqual([]);
    expect(ip.kernel.ipRoutes('ipv4')).not.toContain(ROUTE);
  });

  it('ip that cannot start: nothing to remove, nothing heard', async () => {
    const ip = ipOf({}, () => notFound);
    expect(await removeLocalRoute(ip.run, 'ipv6', ROUTING, ip.hook)).toBe('no ip');
    expect(ip.heard).toEqual([]);
  });

  it('a delete failing: thrown after the hook heard, so a rollback can add back', async () => {
    const ip = ipOf({ ipv4: { rules: [RULE], routes: [ROUTE] } }, (call) =>
      call.args[1] === 'route' && call.args[2] === 'del'
        ? exited(2, 'RTNETLINK answers: Operation not permitted\n')
        : undefined,
    );
    await expect(removeLocalRoute(ip.run, 'ipv4', ROUTING, ip.hook)).rejects.toThrow(
      "cannot delete TPROXY's route",
    );
    expect(ip.heard).toEqual([2]);
    expect(ip.kernel.ipRules('ipv4')).toEqual([]);
    expect(ip.kernel.ipRoutes('ipv4')).toEqual([ROUTE]);
  });
});

describe('readLocalRoute and hasPassthroughAddress: what --check sees', () => {
  it.each<[string, Partial<Record<Family, IpSetup>>, { rule: boolean; route: boolean }]>([
    ['both', { ipv6: { rules: [RULE], routes: [ROUTE] } }, { rule: true, route: true }],
    ['the rule alone', { ipv6: { rules: [RULE] } }, { rule: true, route: false }],
    ['the route alone', { ipv6: { routes: [ROUTE] } }, { rule: false, route: true }],
    ['neither (the table never made)', {}, { rule: false, route: false }],
    [
      'both in another table',
      { ipv6: { rules: [{ ...RULE, table: 134 }], routes: ['local default dev lo table 134'] } },
      { rule: false, route: false },
    ],
    [
      'the IPv4 ones only',
      { ipv4: { rules: [RULE], routes: [ROUTE] } },
      { rule: false, route: false },
    ],
  ])('readLocalRoute (ipv6), %s', async (_name, seed, found) => {
    const ip = ipOf(seed);
    expect(await readLocalRoute(ip.run, 'ipv6', ROUTING)).toEqual(found);
    expect(ip.commands).toEqual([
      'ip -6 rule list fwmark 1337 table 133',
      'ip -6 route show table 133',
    ]);
  });

  it.each<[string, readonly string[], CommandResult | undefined, boolean]>([
    ['a fresh lo (::1 only)', [], undefined, false],
    ['::6 added', ['::6/128'], undefined, true],
    ['::66 is not ::6', ['::66/128'], undefined, false],
    ['::6 with another prefix is not the /128', ['::6/64'], undefined, false],
    ['ip failing', ['::6/128'], exited(1, 'Device "lo" does not exist.\n'), false],
  ])('hasPassthroughAddress, %s', async (_name, lo, answer, has) => {
    const ip = ipOf({ ipv6: { lo } }, () => answer);
    expect(await hasPassthroughAddress(ip.run, '::6')).toBe(has);
    expect(ip.commands).toEqual(['ip -6 addr show dev lo']);
  });

  it('hasPassthroughAddress where ip cannot start: thrown (exit 3 in --check)', async () => {
    const ip = ipOf({}, () => notFound);
    await expect(hasPassthroughAddress(ip.run, '::6')).rejects.toThrow(
      'cannot run ip -6 addr show dev lo: not found',
    );
  });
});

describe('reading the route table: only "FIB table does not exist" means no route', () => {
  const denied = exited(2, 'RTNETLINK answers: Operation not permitted\n');
  const failShow = (call: Call) =>
    call.args[1] === 'route' && call.args[2] === 'show' ? denied : undefined;

  it.each([
    ['readLocalRoute (--check)', (run: RunCommand) => readLocalRoute(run, 'ipv4', ROUTING)],
    ['removeLocalRoute (--cleanup)', (run: RunCommand) => removeLocalRoute(run, 'ipv4', ROUTING)],
  ])('%s: any other failure is an error, not a missing route', async (_name, call) => {
    const ip = ipOf({ ipv4: { rules: [RULE], routes: [ROUTE] } }, failShow);
    await expect(call(ip.run)).rejects.toThrow(
      "cannot read TPROXY's route (ip -4 route show table 133): exit 2: RTNETLINK answers: Operation not permitted",
    );
    expect(ip.kernel.ipRules('ipv4')).toEqual(['32765: fwmark 0x539 lookup 133']);
  });

  it('a table never made reads as no route', async () => {
    const ip = ipOf();
    expect(await readLocalRoute(ip.run, 'ipv4', ROUTING)).toEqual({ rule: false, route: false });
  });
});
