/**
 * validateRedirect's refusals that need no capture: they return before any probe
 * connection is made (the probe itself is proven in test/kernel/hardening.test.ts,
 * inside a namespace — never from this machine's own).
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { validateRedirect } from '../../src/system/probe.js';
import { configFrom } from '../config-from.js';

describe('validateRedirect', () => {
  it.each([
    [{ uid: 1337, gid: 0 }, 'uid 1337 gid 0'],
    [{ uid: 0, gid: 1337 }, 'uid 0 gid 1337'],
  ])('refuses to probe from a proxy identity %j', async (identity, named) => {
    const result = await validateRedirect(await configFrom(['-u', '1337']), identity);
    expect(result.ok).toBe(false);
    expect(result.detail).toContain(named);
    expect(result.detail).toContain('proxy identity');
  });

  it('reports a proxy port that is taken instead of probing', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ port: 0, host: '0.0.0.0' }, resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const config = await configFrom(['-p', String(port), '-u', '1337']);
      const result = await validateRedirect(config, { uid: 1000, gid: 1000 });
      expect(result.ok).toBe(false);
      expect(result.detail).toContain(`cannot listen on the proxy port ${port}`);
    } finally {
      taken.close();
    }
  });
});
