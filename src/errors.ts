/**
 * Every failure the user can cause or meet is one of these. The CLI maps them to
 * exit codes in one place (cli.ts); docs/operations.md documents each code.
 */
export abstract class MeshInitError extends Error {
  abstract readonly exitCode: number;
}

/** Bad flags or environment. Nothing has been applied. */
export class UsageError extends MeshInitError {
  readonly exitCode = 2;
}

/** No usable iptables backend, or the current rules could not be read. Nothing applied. */
export class BackendError extends MeshInitError {
  readonly exitCode = 3;
}

/** `*-restore` refused the ruleset. The restore is one transaction: nothing of it applied. */
export class RestoreError extends MeshInitError {
  readonly exitCode = 4;
  /**
   * It failed on a `-D`, `-X` or `-N` line: the table is not what the text was planned
   * for (not read yet, or changed since by another program, often another mesh-init
   * run). Reading it again and planning anew helps.
   */
  readonly stale: boolean;
  constructor(message: string, options: { stale?: boolean } = {}) {
    super(message);
    this.stale = options.stale ?? false;
  }
}

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;

/** --run-validation found that outbound TCP does not land on the proxy (Istio's code). */
export class ValidationError extends MeshInitError {
  readonly exitCode = 126;
}

/** --check found the live rules differ from the planned ones. */
export const EXIT_DRIFT = 5;
