/**
 * How apply behaves on a real kernel: re-runs converge, rules of others survive,
 * bad input changes nothing, dry-run output is what apply feeds, and the backend
 * already in use is picked.
 */
import { execa } from 'execa';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ADDRESSES, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const FOREIGN = `*nat
:FOREIGN - [0:0]
-A FOREIGN -p udp --dport 9999 -j RETURN
-A PREROUTING -p udp -j FOREIGN
-A OUTPUT -p udp --dport 9998 -j RETURN
COMMIT
`;

for (const backend of ['legacy', 'nft'] as const) {
  kernelSuite(`apply with the ${backend} backend`, () => {
    let net: Pod;
    beforeEach(async () => {
      net = await Pod.create();
    });
    afterEach(async () => net?.destroy());

    const apply = async (...args: string[]) => {
      const result = await net.meshInit([...args, '--iptables-backend', backend]);
      expect(result.stderr, result.stderr).not.toContain('internal error');
      return result;
    };

    it('re-running converges to exactly the same rules, on both families', async () => {
      const args = ['-p', '15001', '-u', String(PROXY_UID), '--ipv6', 'true'];
      expect((await apply(...args)).exitCode).toBe(0);
      const first = [await net.natTable(backend, 'ipv4'), await net.natTable(backend, 'ipv6')];
      expect(first[0]).toContain('-j ISTIO_OUTPUT');
      for (let run = 0; run < 2; run++) {
        expect((await apply(...args)).exitCode).toBe(0);
        expect([await net.natTable(backend, 'ipv4'), await net.natTable(backend, 'ipv6')]).toEqual(
          first,
        );
      }
    });

    it('a re-run with another config replaces the old rules instead of adding to them', async () => {
      expect((await apply('-p', '15001', '-b', '8080,9090')).exitCode).toBe(0);
      expect((await apply('-p', '15002', '-b', '*')).exitCode).toBe(0);
      const table = await net.natTable(backend, 'ipv4');
      expect(table).not.toContain('15001');
      expect(table).not.toContain('--dport 9090');
      expect(table.match(/-j ISTIO_INBOUND/g)).toHaveLength(1);
      expect(table.match(/-j ISTIO_OUTPUT/g)).toHaveLength(1);
    });

    it('rules that others put in the nat table survive apply and re-apply', async () => {
      await net.restoreForeign(backend, 'ipv4', FOREIGN);
      const before = (await net.natTable(backend, 'ipv4'))
        .split('\n')
        .filter((l) => l.startsWith('-A'));
      expect((await apply()).exitCode).toBe(0);
      expect((await apply()).exitCode).toBe(0);
      const after = await net.natTable(backend, 'ipv4');
      for (const line of before) expect(after).toContain(line);
      expect(after).toContain(':FOREIGN');
    });

    it.each([
      [['-p', '70000'], '--proxy-port'],
      [['-u', '-5'], '--proxy-uid'],
      [['-i', '10.0.0.0/33'], '--outbound-include-cidrs'],
      [['-m', 'TPROXIED'], '--inbound-interception-mode'],
      [['--bogus'], 'bogus'],
      [['-p', ''], '--proxy-port'],
    ])('bad input %j exits 2 naming %s and leaves the nat table as it was', async (args, flag) => {
      await net.restoreForeign(backend, 'ipv4', FOREIGN);
      expect((await apply()).exitCode).toBe(0);
      const before = await net.natTable(backend, 'ipv4');
      const result = await apply(...args);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(flag);
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(await net.natTable(backend, 'ipv4')).toBe(before);
    });

    it('piping --dry-run into iptables-restore --noflush is the same as applying', async () => {
      const args = [
        '-p',
        '15001',
        '-z',
        '15006',
        '-u',
        '1337',
        '-d',
        '15090,15021',
        '--ipv6',
        'false',
      ];
      const dry = await apply('-n', ...args);
      expect(dry.exitCode).toBe(0);
      const other = await Pod.create();
      try {
        await execa(
          'ip',
          ['netns', 'exec', other.pod, `iptables-${backend}-restore`, '--noflush'],
          {
            input: dry.stdout,
          },
        );
        expect((await apply(...args)).exitCode).toBe(0);
        expect(await other.natTable(backend, 'ipv4')).toBe(await net.natTable(backend, 'ipv4'));
      } finally {
        await other.destroy();
      }
    });

    it('without any iptables binary it exits 3 and names what it tried', async () => {
      const result = await net.meshInit(['--iptables-backend', backend, '--ipv6', 'false'], {
        PATH: '/nonexistent',
      });
      expect(result.exitCode).toBe(3);
      expect(result.stderr).toMatch(new RegExp(`iptables-${backend}-restore: not found`));
    });
  });
}

kernelSuite('backend auto', () => {
  let net: Pod;
  beforeEach(async () => {
    net = await Pod.create();
  });
  afterEach(async () => net?.destroy());

  it.each(['legacy', 'nft'] as const)(
    'picks %s when its tables already hold rules, and applies there',
    async (inUse) => {
      await net.restoreForeign(inUse, 'ipv4', FOREIGN);
      const result = await net.meshInit(['--ipv6', 'false']);
      expect(result.exitCode).toBe(0);
      expect(result.stderr).toContain(`with the ${inUse} backend`);
      expect(await net.natTable(inUse, 'ipv4')).toContain('-j ISTIO_OUTPUT');
      const other = inUse === 'legacy' ? 'nft' : 'legacy';
      expect(await net.natTable(other, 'ipv4')).not.toContain('ISTIO_OUTPUT');
    },
  );

  it('8 runs at once with backend auto end in the state of one run', async () => {
    await net.restoreForeign('legacy', 'ipv4', FOREIGN);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => net.meshInit(['--ipv6', 'false'])),
    );
    for (const result of results) expect(result.exitCode, result.stderr).toBe(0);
    const table = await net.natTable('legacy', 'ipv4');
    expect(table.match(/-j ISTIO_INBOUND/g)).toHaveLength(1);
    expect(table.match(/-j ISTIO_OUTPUT/g)).toHaveLength(1);
    expect(await net.natTable('nft', 'ipv4')).not.toContain('ISTIO');
  });

  it('picks nft in an empty namespace', async () => {
    const result = await net.meshInit(['--ipv6', 'false']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('with the nft backend');
  });
});

kernelSuite('capture options', () => {
  let net: Pod;
  const a = ADDRESSES.ipv4;
  beforeEach(async () => {
    net = await Pod.create();
    await net.serve('pod', 'proxy', 'tcp', [15001], { uid: PROXY_UID });
    await net.serve('pod', 'app', 'tcp', [8080, 8081], { uid: 1000 });
    await net.serve('peer', 'peer', 'tcp', [80, 443, 8080]);
  });
  afterEach(async () => net?.destroy());

  const init = async (...args: string[]) => {
    const result = await net.meshInit(['--ipv6', 'false', '--iptables-backend', 'legacy', ...args]);
    expect(result.exitCode, result.stderr).toBe(0);
  };
  const landsOn = async (from: 'pod' | 'peer', host: string, port: number) =>
    (await net.connect(from, 'tcp', host, port, from === 'pod' ? { uid: 1000 } : {})).server;

  it('the classic -p 15001 -u 1337 sends inbound to the same port as outbound', async () => {
    await init('-p', '15001', '-u', '1337');
    expect(await landsOn('peer', a.pod, 8080)).toBe('proxy');
    expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
  });

  it('-b with a port list captures only those inbound ports', async () => {
    await init('-b', '8080');
    expect(await landsOn('peer', a.pod, 8080)).toBe('proxy');
    expect(await landsOn('peer', a.pod, 8081)).toBe('app');
  });

  it('-b "" captures no inbound traffic but still outbound', async () => {
    await init('-b', '');
    expect(await landsOn('peer', a.pod, 8080)).toBe('app');
    expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
  });

  it('-i with a CIDR list captures only those destinations; -x excludes', async () => {
    await init('-i', '10.200.1.0/24', '-x', `${a.peer}/32`);
    expect(await landsOn('pod', a.peer, 80)).toBe('peer');
    await init('-i', '10.200.1.0/24');
    expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
    await init('-i', '10.99.0.0/16');
    expect(await landsOn('pod', a.peer, 80)).toBe('peer');
  });

  it('-x still excludes a destination on a port that -q includes, as in Istio', async () => {
    await init('-x', `${a.peer}/32`, '-q', '443');
    expect(await landsOn('pod', a.peer, 443)).toBe('peer');
    await init('-x', '10.99.0.0/16', '-q', '443');
    expect(await landsOn('pod', a.peer, 443)).toBe('proxy');
  });

  it('-o excludes destination ports; -q includes them even when -i captures nothing', async () => {
    await init('-o', '443');
    expect(await landsOn('pod', a.peer, 443)).toBe('peer');
    expect(await landsOn('pod', a.peer, 80)).toBe('proxy');
    await init('-i', '', '-q', '443');
    expect(await landsOn('pod', a.peer, 443)).toBe('proxy');
    expect(await landsOn('pod', a.peer, 80)).toBe('peer');
  });
});
