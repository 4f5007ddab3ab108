/**
 * Every golden restore text written for a fresh namespace is accepted by the real
 * iptables-restore --test of both backends (the goldens pin the text; this proves
 * the kernel side takes it). Goldens computed over a live table (with -D lines)
 * need that table and are left to the unit suite.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Pod } from './pod.js';
import { kernelSuite } from './suite.js';

const DIR = new URL('../golden/iptables/', import.meta.url);
const fresh = readdirSync(DIR)
  .filter((name) => name.endsWith('.golden'))
  .map((name) => ({ name, text: readFileSync(new URL(name, DIR), 'utf8') }))
  .filter(({ text }) => !/^-D /m.test(text));

kernelSuite('golden restore texts', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
  });
  afterAll(async () => net?.destroy());

  it('there are goldens for a fresh namespace to check', () => {
    expect(fresh.length).toBeGreaterThanOrEqual(15);
  });

  for (const backend of ['legacy', 'nft'] as const) {
    it.each(fresh.map(({ name }) => name))(
      `%s is accepted by the ${backend} backend`,
      async (name) => {
        const { text } = fresh.find((golden) => golden.name === name) ?? { text: '' };
        const family = name.includes('.ipv6.') ? 'ip6tables' : 'iptables';
        const result = await execa(
          'ip',
          ['netns', 'exec', net.pod, `${family}-${backend}-restore`, '--test', '--noflush'],
          { input: text, reject: false },
        );
        expect(result.stderr).toBe('');
        expect(result.exitCode).toBe(0);
      },
    );
  }
});

const NFT_DIR = new URL('../golden/nftables/', import.meta.url);
const nftGoldens = readdirSync(NFT_DIR)
  .filter((name) => name.endsWith('.golden'))
  .map((name) => ({ name, text: readFileSync(new URL(name, NFT_DIR), 'utf8') }));

kernelSuite('golden nft scripts', () => {
  let net: Pod;
  beforeAll(async () => {
    net = await Pod.create();
  });
  afterAll(async () => net?.destroy());

  it('there are nft goldens to check', () => {
    expect(nftGoldens.length).toBeGreaterThanOrEqual(30);
  });

  // `nft -c` sends the transaction to the kernel, which checks it and throws it away.
  it.each(nftGoldens.map(({ name }) => name))('%s is accepted by nft -c', async (name) => {
    const { text } = nftGoldens.find((golden) => golden.name === name) ?? { text: '' };
    const result = await execa('ip', ['netns', 'exec', net.pod, 'nft', '-c', '-f', '-'], {
      input: text,
      reject: false,
    });
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
  });
});
