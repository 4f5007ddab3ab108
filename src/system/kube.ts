/**
 * Reading one pod from the Kubernetes API with the official client, as the CNI
 * plugin's ADD and CHECK do. Each read loads the kubeconfig anew: the DaemonSet that
 * writes it may not have yet, or may have renewed its token since the last read.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  Observable,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';

/** What the plugin reads of a pod: its names, annotations and labels, and its containers. */
export interface PodView {
  readonly metadata?: {
    readonly annotations?: Readonly<Record<string, string>>;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly spec?: {
    readonly hostNetwork?: boolean;
    readonly containers?: readonly { readonly name?: string }[];
    readonly initContainers?: readonly { readonly name?: string }[];
  };
}

export type PodRead =
  | { readonly ok: true; readonly pod: PodView }
  /** `retry`: a condition that may clear up (no answer, a busy or failing server). */
  | { readonly ok: false; readonly retry: boolean; readonly reason: string };

export type ReadPod = (namespace: string, name: string) => Promise<PodRead>;

/** Aborts a request that takes longer than `ms`, so that a hung API server costs one attempt. */
function timeout(ms: number) {
  return {
    pre: (context: RequestContext) => {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
  };
}

/** Whether an answer of the API server may change if asked again. */
function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/** The Status object's message, whether the client parsed the body or left it as text. */
function describeApiError(error: ApiException<unknown>): string {
  let body = error.body as { message?: unknown } | string | undefined;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as { message?: unknown };
    } catch {
      // Not JSON: shown as it is.
    }
  }
  const message =
    typeof body === 'object' && body !== null && typeof body.message === 'string'
      ? body.message
      : typeof body === 'string' && body !== ''
        ? body
        : `HTTP ${error.code}`;
  return `the API answered ${error.code}: ${message}`;
}

export function kubePodReader(kubeconfig: string, timeoutMs: number): ReadPod {
  return async (namespace, name) => {
    const config = new KubeConfig();
    try {
      config.loadFromFile(kubeconfig);
    } catch (error) {
      return {
        ok: false,
        retry: true,
        reason: `cannot load the kubeconfig ${kubeconfig}: ${(error as Error).message}`,
      };
    }
    try {
      const api = config.makeApiClient(CoreV1Api);
      const pod = await api.readNamespacedPod(
        { name, namespace },
        { middleware: [timeout(timeoutMs)], middlewareMergeStrategy: 'append' },
      );
      return { ok: true, pod };
    } catch (error) {
      if (error instanceof ApiException) {
        return { ok: false, retry: retryable(error.code), reason: describeApiError(error) };
      }
      const why = (error as Error)?.message ?? String(error);
      return { ok: false, retry: true, reason: `no answer from the API server: ${why}` };
    }
  };
}
