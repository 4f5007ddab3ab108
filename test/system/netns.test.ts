import { describe, expect, it } from 'vitest';
import type { RunCommand } from '../../src/system/exec.js';
import { addressFamiliesIn, inNamespace, isNamespaceFile } from '../../src/system/netns.js';
import { locateIn } from '../../src/system/programs.js';

describe('inNamespace', () => {
  const recorded: string[][] = [];
  const run: RunCommand = async (file, args) => {
    recorded.push([file, ...args]);
    return { exitCode: 0, stdout: '', stderr: '' };
  };

  it('starts the program through nsenter, by name unless told where programs are', async () => {
    recorded.length = 0;
    await inNamespace(run, '/var/run/netns/pod')('iptables-nft-save', ['-t', 'nat']);
    const locate = locateIn(['/usr/sbin', '/usr/bin'], (path) =>
      ['/usr/bin/nsenter', '/usr/sbin/iptables-nft-save'].includes(path),
    );
    await inNamespace(run, '/proc/42/ns/net', locate)('iptables-nft-save', ['-t', 'nat']);
    expect(recorded).toEqual([
      ['nsenter', '--net=/var/run/netns/pod', '--', 'iptables-nft-save', '-t', 'nat'],
      [
        '/usr/bin/nsenter',
        '--net=/proc/42/ns/net',
        '--',
        '/usr/sbin/iptables-nft-save',
        '-t',
        'nat',
      ],
    ]);
  });
});

describe('locateIn', () => {
  it('takes the first directory that has it, keeps paths, and leaves an unknown name as it is', () => {
    const looked: string[] = [];
    const locate = locateIn(['/a', '/b'], (path) => {
      looked.push(path);
      return path === '/b/ip';
    });
    expect([locate('ip'), locate('ip'), locate('/opt/ip'), locate('nft')]).toEqual([
      '/b/ip',
      '/b/ip',
      '/opt/ip',
      'nft',
    ]);
    expect(looked).toEqual(['/a/ip', '/b/ip', '/a/nft', '/b/nft']);
  });
});

describe('isNamespaceFile', () => {
  it("is true for a network namespace's file", () => {
    expect(isNamespaceFile('/proc/self/ns/net')).toBe(true);
  });

  it('is false for what is not a namespace', () => {
    expect(isNamespaceFile('/etc/hostname')).toBe(false);
    expect(isNamespaceFile('/no/such/file')).toBe(false);
  });
});

describe('addressFamiliesIn', () => {
  const shows =
    (stdout: string): RunCommand =>
    async () => ({ exitCode: 0, stdout, stderr: '' });
  it("reads each family from ip's global addresses; lo's (mesh-init's ::6) do not count", async () => {
    const lo = '1: lo    inet6 ::6/128 scope global \\       valid_lft forever\n';
    const eth0v4 = '2: eth0    inet 10.244.1.7/24 brd 10.244.1.255 scope global eth0\n';
    const eth0v6 = '2: eth0    inet6 fd00::7/64 scope global \\       valid_lft forever\n';
    expect(await addressFamiliesIn(shows(lo + eth0v4))).toEqual({ ipv4: true, ipv6: false });
    expect(await addressFamiliesIn(shows(eth0v4 + eth0v6))).toEqual({ ipv4: true, ipv6: true });
    expect(await addressFamiliesIn(shows(''))).toEqual({ ipv4: false, ipv6: false });
  });
});
