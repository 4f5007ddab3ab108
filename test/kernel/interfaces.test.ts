/**
 * -c (--exclude-interfaces) and -k (--kube-virt-interfaces) on a real kernel: a
 * second peer sits behind the pod's eth1.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDRESSES, Pod, PROXY_UID } from './pod.js';
import { kernelSuite } from './suite.js';

const a = ADDRESSES.ipv4;
const ETH1 = { pod: '10.200.2.1', peer2: '10.200.2.2' };

kernelSuite('interfaces', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
    await net.addSecondPeer();
    await net.serve('pod', 'proxy-outbound', 'tcp', [15001], { uid: PROXY_UID });
    await net.serve('pod', 'proxy-inbound', 'tcp', [15006], { uid: PROXY_UID });
    await net.serve('pod', 'app', 'tcp', [8080], { uid: 1000 });
    await net.serve('peer', 'peer', 'tcp', [80]);
    await net.serve('peer2', 'peer2', 'tcp', [80]);
  });
  afterAll(async () => net?.destroy());

  const init = async (...args: string[]) => {
    const result = await net.meshInit([
      ...['-p', '15001', '-z', '15006', '--ipv6', 'false', '--iptables-backend', 'legacy'],
      ...args,
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
  };

  it('-c: traffic in or out of an excluded interface is never captured; the rest still is', async () => {
    await init('-c', 'eth1');
    expect((await net.connect('peer2', 'tcp', ETH1.pod, 8080)).server).toBe('app');
    expect((await net.connect('pod', 'tcp', ETH1.peer2, 80, { uid: 1000 })).server).toBe('peer2');
    expect((await net.connect('peer', 'tcp', a.pod, 8080)).server).toBe('proxy-inbound');
    expect((await net.connect('pod', 'tcp', a.peer, 80, { uid: 1000 })).server).toBe(
      'proxy-outbound',
    );
  });

  it('-k: TCP arriving on a VM interface goes to the outbound port with its destination', async () => {
    await init('-k', 'eth1');
    const vm = await net.connect('peer2', 'tcp', ETH1.pod, 8080);
    expect(vm.server).toBe('proxy-outbound');
    expect(vm.original).toBe(`${ETH1.pod}:8080`);
    expect((await net.connect('peer', 'tcp', a.pod, 8080)).server).toBe('proxy-inbound');
  });

  it('-k with an -i list redirects only those destinations, and is never inbound', async () => {
    await init('-k', 'eth1', '-i', '10.99.0.0/16');
    expect((await net.connect('peer2', 'tcp', ETH1.pod, 8080)).server).toBe('app');
    await init('-k', 'eth1', '-i', '10.200.2.0/24');
    expect((await net.connect('peer2', 'tcp', ETH1.pod, 8080)).server).toBe('proxy-outbound');
  });

  it('--check reads -k and -c rules back as planned (iptables-save spells them its way)', async () => {
    const args = ['-k', 'eth1', '-c', 'eth2', '-i', '10.200.2.0/24'];
    await init(...args);
    const check = await net.meshInit([
      ...['-p', '15001', '-z', '15006', '--ipv6', 'false', '--iptables-backend', 'legacy'],
      ...args,
      '--check',
    ]);
    expect(check.exitCode, check.stdout).toBe(0);
  });
});
