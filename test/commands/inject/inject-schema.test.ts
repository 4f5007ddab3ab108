/**
 * What inject writes is what a current cluster accepts: every object of its output
 * validates against the Kubernetes OpenAPI schema (kubernetes-models 4.5.1 carries
 * Kubernetes 1.33's: types, required fields, enums), under the apiVersions a
 * current API server serves. The same check refuses broken manifests, so it can fail.
 */

import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { ReplicationController } from 'kubernetes-models/v1/ReplicationController';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { fixture, inject, objectsOf, podSpecOf } from './inject-fixtures.js';

/** A model validates what its constructor was given and throws on the first violations. */
type Model = new (data: never) => { validate(): void };

/** The kinds these tests meet, under the apiVersions Kubernetes 1.33 serves. */
const SERVED: ReadonlyMap<string, Model> = new Map<string, Model>([
  ['v1/Pod', Pod],
  ['v1/Service', Service],
  ['v1/ConfigMap', ConfigMap],
  ['v1/ReplicationController', ReplicationController],
  ['apps/v1/Deployment', Deployment],
  ['apps/v1/StatefulSet', StatefulSet],
  ['apps/v1/DaemonSet', DaemonSet],
  ['apps/v1/ReplicaSet', ReplicaSet],
  ['batch/v1/Job', Job],
  ['batch/v1/CronJob', CronJob],
]);

/** Why the API server would refuse the object, or undefined. */
function refusal(object: Record<string, unknown>): string | undefined {
  const model = SERVED.get(`${object.apiVersion}/${object.kind}`);
  if (model === undefined) return `${object.apiVersion} ${object.kind} is not served`;
  try {
    new model(object as never).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Kubernetes' qualified names for annotation keys: an optional DNS-subdomain prefix and a name. */
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** Container names are DNS labels. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('the output validates against the Kubernetes 1.33 schema', () => {
  it.each<[string, string, string[]]>([
    [
      "the seed's apps.yaml, upgraded, with the proxy",
      'apps.yaml',
      ['--upgrade-api', '--proxy-image', 'proxy:1'],
    ],
    ["the seed's apps.yaml, upgraded, CNI mode", 'apps.yaml', ['--upgrade-api', '--cni']],
    ['every kind', 'kinds.yaml', ['--proxy-image', 'proxy:1']],
    ['removed apiVersions, upgraded', 'old-apis.yaml', ['--upgrade-api']],
    ['annotations', 'annotations.yaml', ['--proxy-image', 'proxy:1']],
    ['comments', 'comments.yaml', []],
    ['JSON', 'pod.json', []],
  ])('%s', async (_, name, argv) => {
    const { output } = await inject(fixture(name), argv, name);
    // The look-alike custom resource of kinds.yaml is not Kubernetes' to check.
    const objects = objectsOf(output).filter((o) => o.apiVersion !== 'example.com/v1');
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.map(refusal)).toEqual(objects.map(() => undefined));
    for (const object of objects) {
      const spec = podSpecOf(object);
      if (spec === undefined) continue;
      for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
        expect(container.name).toMatch(DNS_LABEL);
      }
      const metadata = (
        object.kind === 'Pod' ? object : (object.spec as { template?: unknown }).template
      ) as
        | {
            metadata?: { annotations?: Record<string, string> };
          }
        | undefined;
      for (const key of Object.keys(metadata?.metadata?.annotations ?? {}))
        expect(key).toMatch(QUALIFIED_NAME);
    }
  });
});

describe('the same check refuses what a cluster would', () => {
  it('the seed injected without --upgrade-api: extensions/v1beta1 is not served', async () => {
    const { output } = await inject(fixture('apps.yaml'));
    expect(objectsOf(output).map(refusal)).toEqual([
      undefined,
      'extensions/v1beta1 Deployment is not served',
      undefined,
      'extensions/v1beta1 Deployment is not served',
    ]);
  });

  it('the seed with only its apiVersion changed: apps/v1 needs a selector', async () => {
    const text = fixture('apps.yaml').replaceAll('extensions/v1beta1', 'apps/v1');
    const deployment = objectsOf(text)[1] ?? {};
    expect(refusal(deployment)).toMatch(/spec must have required property selector/);
  });

  it.each<[string, (container: Record<string, unknown>) => void, RegExp]>([
    [
      'a UID as a string',
      (c) => Object.assign(c.securityContext as object, { runAsUser: '0' }),
      /runAsUser must be integer/,
    ],
    [
      'a container without a name',
      (c) => {
        delete c.name;
      },
      /must have required property name/,
    ],
    [
      'args that are not strings',
      (c) => {
        c.args = ['-p', 15001];
      },
      /args\/1 must be string/,
    ],
  ])('an init container with %s', async (_, spoil, message) => {
    const { output } = await inject(fixture('kinds.yaml'), [], 'kinds.yaml');
    const pod = objectsOf(output)[0] ?? {};
    expect(refusal(pod)).toBeUndefined();
    spoil(podSpecOf(pod).initContainers[0]);
    expect(refusal(pod)).toMatch(message);
  });
});
