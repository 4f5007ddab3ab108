/**
 * Every failure the user can cause or meet is one of these. The CLI maps them to
 * exit codes in one place (cli.ts); the README documents each code.
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
}

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
