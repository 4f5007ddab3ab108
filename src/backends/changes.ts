import { RestoreError } from '../errors.js';

/**
 * One change this run made, and how to take it back: a change of rules (a table),
 * or of routing outside the tables (TPROXY's ip rule).
 */
interface Change {
  readonly kind: 'rules' | 'routing';
  readonly undo: () => Promise<void>;
  /** What the log says once it was taken back. */
  readonly done: string;
  /** What the log says when taking it back failed too. */
  readonly failed: (why: string) => string;
}

/**
 * What this run changed, and how to put each back. Every failure after a change
 * goes through putBack, so a pod is never left half-captured: rules first, then
 * routing — the marking rules and the route they need come and go together, so
 * where rules could not be put back the routing stays too.
 */
export class Changes {
  private readonly changes: Change[] = [];

  added(change: Change): void {
    this.changes.push(change);
  }

  /** Puts back every change, rules first, and throws `error` with what happened. */
  async putBack(error: unknown): Promise<never> {
    if (this.changes.length === 0) throw error;
    const notes: string[] = [];
    let stuck = false;
    const undo = async (change: Change) => {
      try {
        await change.undo();
        notes.push(change.done);
        return true;
      } catch (failure) {
        notes.push(change.failed((failure as Error).message.split('\n').join('\n    ')));
        return false;
      }
    };
    for (const change of this.changes.filter((c) => c.kind === 'rules')) {
      if (!(await undo(change))) stuck = true;
    }
    const routing = this.changes.filter((c) => c.kind === 'routing');
    if (!stuck) for (const change of routing) await undo(change);
    else if (routing.length > 0) {
      notes.push('the ip rule and route stay as this run left them, for the rules it keeps');
    }
    // Same error, so the same exit code, with what was put back; but where rules
    // could not be put back, rules are applied, which only exit 4 may say.
    const first = error instanceof Error ? error.message : String(error);
    const message = [first, ...notes.map((note) => `  ${note}`)].join('\n');
    if (stuck) throw new RestoreError(message);
    if (!(error instanceof Error)) throw new Error(message);
    error.message = message;
    throw error;
  }
}
