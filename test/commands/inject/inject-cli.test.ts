/**
 * `mesh-init inject` through main(argv, env, deps): the exit codes, what goes to
 * stdout and stderr, and that it never runs a program.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/cli.js';
import { FLAG_ANNOTATIONS, POD_FLAGS } from '../../../src/config/annotations.js';
import { fakeSystem, LIVE_NFT } from '../../fake-system.js';
import { fixture } from './inject-fixtures.js';

/** main() with files to read; `-` is standard input. */
async function runInject(argv: string[], files: Record<string, string> = {}) {
  const system = fakeSystem(LIVE_NFT);
  const reads: string[] = [];
  const readInput = async (name: string) => {
    reads.push(name);
    const text = files[name];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${name}'`);
    return text;
  };
  const code = await main(['inject', ...argv], {}, { ...system.deps, readInput });
  return { code, reads, ...system };
}

describe('mesh-init inject', () => {
  it('writes the injected manifest to stdout and the warnings to stderr, exit 0, no program run', async () => {
    const { code, stdout, stderrLines, calls } = await runInject(['-f', 'apps.yaml'], {
      'apps.yaml': fixture('apps.yaml'),
    });
    expect(code).toBe(0);
    await expect(stdout()).toMatchFileSnapshot('../../golden/inject/seed-apps.yaml');
    expect(stderrLines()).toEqual([
      expect.stringMatching(
        /^mesh-init: warning: Deployment service-one \(apps\.yaml, document 2\): apiVersion extensions\/v1beta1 was removed/,
      ),
      expect.stringMatching(
        /^mesh-init: warning: Deployment service-two \(apps\.yaml, document 4\): /,
      ),
    ]);
    expect(calls).toEqual([]);
  });

  it('reads standard input for -f -, and names it stdin', async () => {
    const { code, reads, stderrLines } = await runInject(['-f', '-', '--upgrade-api'], {
      '-': fixture('apps.yaml'),
    });
    expect(code).toBe(0);
    expect(reads).toEqual(['-']);
    expect(stderrLines()[0]).toMatch(
      /^mesh-init: Deployment service-one \(stdin, document 2\): apiVersion extensions\/v1beta1 was removed in Kubernetes 1\.16; --upgrade-api made it apps\/v1/,
    );
  });

  it.each<[string, string[], string]>([
    [
      'no -f',
      [],
      'mesh-init: missing --filename: name the manifest file (-f apps.yaml), or - for standard input',
    ],
    [
      'a file that cannot be read',
      ['-f', 'nope.yaml'],
      "mesh-init: invalid --filename nope.yaml: cannot read it (ENOENT: no such file or directory, open 'nope.yaml')",
    ],
    [
      'a bad capture flag',
      ['-f', 'apps.yaml', '-p', '0'],
      'mesh-init: invalid --proxy-port: expected an integer 1-65535, got "0"',
    ],
    ['a run-mode flag', ['-f', 'apps.yaml', '--dry-run'], 'mesh-init: Unknown argument: dry-run'],
    [
      'a flag given twice',
      ['-f', 'apps.yaml', '-x', '10.0.0.0/8', '-x', '10.1.0.0/16'],
      'mesh-init: invalid --outbound-exclude-cidrs: given more than once',
    ],
    [
      'a bad container name',
      ['-f', 'apps.yaml', '--container-name', 'Mesh_Init'],
      'mesh-init: invalid --container-name: expected a container name (lower-case letters, digits and "-", at most 63), got "Mesh_Init"',
    ],
    [
      '--proxy-name alone',
      ['-f', 'apps.yaml', '--proxy-name', 'envoy'],
      'mesh-init: invalid --proxy-name: it only goes with --proxy-image (no proxy is added)',
    ],
    [
      'one name for both',
      ['-f', 'apps.yaml', '--proxy-image', 'p:1', '--proxy-name', 'mesh-init'],
      'mesh-init: conflicting --container-name and --proxy-name: both name a container "mesh-init"',
    ],
    [
      'an image with a blank',
      ['-f', 'apps.yaml', '--image', 'mesh init'],
      'mesh-init: invalid --image: expected an image reference, got "mesh init"',
    ],
    [
      'a bad annotation',
      ['-f', 'bad.yaml'],
      'mesh-init: invalid annotation traffic.sidecar.istio.io/excludeOutboundIPRanges on Pod p (bad.yaml, document 1): expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8, got "10.0.0.300/8"',
    ],
  ])('exits 2 on %s, before writing anything to stdout', async (_, argv, message) => {
    const bad =
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.300/8"\nspec:\n  containers:\n  - name: app\n    image: x\n';
    const { code, stdout, stderrLines } = await runInject(argv, {
      'apps.yaml': fixture('apps.yaml'),
      'bad.yaml': bad,
    });
    expect(stderrLines()).toEqual([message]);
    expect(code).toBe(2);
    expect(stdout()).toBe('');
  });

  it('--help lists its own flags, every capture flag and every annotation, exit 0', async () => {
    const { code, stdout, reads } = await runInject(['--help']);
    expect(code).toBe(0);
    expect(reads).toEqual([]);
    const help = stdout();
    expect(help).toMatch(/^mesh-init inject -f FILE\|- \[options\]/);
    for (const flag of [
      'filename',
      'image',
      'container-name',
      'proxy-image',
      'proxy-name',
      'cni',
      'upgrade-api',
    ]) {
      expect(help).toContain(`--${flag}`);
    }
    for (const flag of POD_FLAGS) expect(help).toContain(`--${flag.name}`);
    for (const key of FLAG_ANNOTATIONS.keys()) {
      if (!key.startsWith('mesh-init/')) expect(help).toContain(key);
    }
    expect(help).toContain('sidecar.istio.io/inject, mesh-init/inject');
    expect(help).toContain('kubectl apply -f <(mesh-init inject --upgrade-api -f apps.yaml)');
  });

  it('mesh-init --help points to inject', async () => {
    const system = fakeSystem(LIVE_NFT);
    expect(await main(['--help'], {}, system.deps)).toBe(0);
    expect(system.stdout()).toContain('mesh-init inject -f FILE|-');
  });
});
