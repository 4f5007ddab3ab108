// CNI mode's validation container in Docker pods: the mesh-init image with
// `--run-validation --skip-rule-apply`, as the proxy UID, with every capability
// dropped and no privilege escalation, joined to a pod's network namespace after
// the init container captured (exit 0) or after none (exit 126). Pods sit on an
// internal network, which gives them no default route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, gate, INIT_ARGS, type Pod, probeEngine } from './pod.js';

const engine = await probeEngine();
const ready = gate(
  'container suite',
  engine.ok ? undefined : engine.reason,
  'a Docker engine and the mesh-init image',
);

/**
 * The flags the injector gives both containers; the validation reads no rules, only
 * the flags. A dual-stack pod's mesh says --dual-stack (Istio's ISTIO_DUAL_STACK) to both.
 */
const flagsFor = (ipv6: boolean) => [...INIT_ARGS, ...(ipv6 ? ['--dual-stack'] : [])];

describe.runIf(ready)('the validation container, unprivileged', () => {
  for (const ipv6 of [false, true]) {
    const stack = ipv6 ? 'a dual-stack pod' : 'an IPv4 pod';

    describe(stack, () => {
      let cluster: Cluster;
      let captured: Pod;
      let bare: Pod;

      beforeAll(async () => {
        cluster = await Cluster.create({ ipv6 });
        [captured, bare] = await Promise.all([
          cluster.startPod('captured'),
          cluster.startPod('bare'),
        ]);
        const init = await cluster.runInit(captured, flagsFor(ipv6));
        expect(init.exitCode, init.stderr).toBe(0);
      });
      const VALIDATE = [...flagsFor(ipv6), '--probe-timeout', '2'];
      afterAll(async () => {
        await cluster?.remove();
      });

      const families = ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];

      it('as the proxy UID after a capturing init container: exit 0, every family probed over lo', async () => {
        const result = await cluster.runValidation(captured, VALIDATE);
        expect(result.exitCode, result.stderr).toBe(0);
        for (const family of families) {
          const over =
            family === 'ipv4' ? '127.0.0.1:\\d+ → 127.0.0.6' : '\\[::1\\]:\\d+ → \\[::6\\]';
          expect(result.stderr).toMatch(
            new RegExp(`${family}: as uid 1337 gid 1337, ${over}:15002 was accepted on port 15001`),
          );
        }
        if (!ipv6) expect(result.stderr).not.toContain('ipv6:');
      });

      it('as the proxy UID without an init container: exit 126', async () => {
        const result = await cluster.runValidation(bare, VALIDATE);
        expect(result.exitCode, result.stderr).toBe(126);
        expect(result.stderr).toContain('validation failed: ipv4: as uid 1337 gid 1337');
      });

      it("as an app's UID: the probe leaves the pod (to 192.0.2.1), 0 then 126", async () => {
        const ok = await cluster.runValidation(captured, VALIDATE, '1000:1000');
        expect(ok.exitCode, ok.stderr).toBe(0);
        expect(ok.stderr).toMatch(
          /ipv4: as uid 1000 gid 1000, \S+ → 192\.0\.2\.1:15002 was accepted on port 15001/,
        );
        const failed = await cluster.runValidation(bare, VALIDATE, '1000:1000');
        expect(failed.exitCode, failed.stderr).toBe(126);
      });

      it('without default routes: the proxy UID needs none; an app UID probes its subnet', async () => {
        for (const pod of [captured, bare]) {
          expect(await cluster.dropDefaultRoutes(pod)).not.toContain('default');
        }
        const proxy = await cluster.runValidation(captured, VALIDATE);
        expect(proxy.exitCode, proxy.stderr).toBe(0);
        const app = await cluster.runValidation(captured, VALIDATE, '1000:1000');
        expect(app.exitCode, app.stderr).toBe(0);
        for (const family of families) {
          expect(app.stderr).toMatch(
            new RegExp(
              `${family}: as uid 1000 gid 1000, .* was accepted on port 15001 \\(this validation's listener\\) \\(first tried: no route to`,
            ),
          );
        }
        expect((await cluster.runValidation(bare, VALIDATE)).exitCode).toBe(126);
        expect((await cluster.runValidation(bare, VALIDATE, '1000:1000')).exitCode).toBe(126);
      });

      it('with the proxy already running on the capture port: it answers, exit 0', async () => {
        await cluster.startSidecars(captured);
        const result = await cluster.runValidation(captured, VALIDATE);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).toContain(
          'was accepted on port 15001, where a listener was already running (uid 1337;',
        );
      });
    });
  }
});
