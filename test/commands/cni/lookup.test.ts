import { describe, expect, it } from 'vitest';
import { lookUpPod } from '../../../src/commands/cni/lookup.js';
import { CniError } from '../../../src/commands/cni/protocol.js';
import type { PodRead } from '../../../src/system/kube.js';

const POLICY = { attempts: 3, intervalMs: 250, timeoutMs: 1000 };
const quiet = { info: () => {}, error: () => {} };

function reader(answers: PodRead[]) {
  const asked: string[] = [];
  return {
    asked,
    read: async (namespace: string, name: string) => {
      asked.push(`${namespace}/${name}`);
      const answer = answers.shift();
      if (answer === undefined) throw new Error('asked too often');
      return answer;
    },
  };
}

describe('lookUpPod', () => {
  it('retries what may clear up, sleeping between attempts, and returns the pod', async () => {
    const sleeps: number[] = [];
    const r = reader([
      { ok: false, retry: true, reason: 'no answer' },
      { ok: false, retry: true, reason: 'the API answered 503' },
      { ok: true, pod: { metadata: {} } },
    ]);
    const pod = await lookUpPod(
      r.read,
      'shop',
      'web',
      POLICY,
      async (ms) => {
        sleeps.push(ms);
      },
      quiet,
    );
    expect(pod).toEqual({ metadata: {} });
    expect(sleeps).toEqual([250, 250]);
    expect(r.asked).toEqual(['shop/web', 'shop/web', 'shop/web']);
  });

  it('gives up after the attempts with "try again later" (11)', async () => {
    const r = reader(Array(3).fill({ ok: false, retry: true, reason: 'no answer' }));
    const failure = lookUpPod(r.read, 'shop', 'web', POLICY, async () => {}, quiet);
    await expect(failure).rejects.toBeInstanceOf(CniError);
    await expect(failure).rejects.toMatchObject({
      code: 11,
      message:
        'cannot read pod shop/web from the Kubernetes API after 3 attempts (mesh-init.podLookup): no answer',
    });
  });

  it('does not retry an answer that will not change (403, 404)', async () => {
    const r = reader([{ ok: false, retry: false, reason: 'the API answered 404: not found' }]);
    await expect(
      lookUpPod(r.read, 'shop', 'web', POLICY, async () => {}, quiet),
    ).rejects.toMatchObject({
      code: 103,
      message: 'cannot read pod shop/web from the Kubernetes API: the API answered 404: not found',
    });
    expect(r.asked).toHaveLength(1);
  });
});
