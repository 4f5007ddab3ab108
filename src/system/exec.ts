import { execa } from 'execa';

export interface CommandResult {
  /** undefined when the program could not be started at all. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** Why it could not be started (e.g. not found). */
  readonly startError?: string;
}

export type RunCommand = (
  file: string,
  args: readonly string[],
  input?: string,
) => Promise<CommandResult>;

/** The one place that starts programs. No shell: arguments are argv, rules go to stdin. */
export const runCommand: RunCommand = async (file, args, input) => {
  const result = await execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  const code = (result as { code?: string }).code;
  return {
    exitCode: result.exitCode,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    ...(result.exitCode === undefined
      ? { startError: code === 'ENOENT' ? 'not found' : (code ?? result.shortMessage) }
      : {}),
  };
};

export function describeFailure(result: CommandResult): string {
  if (result.exitCode === undefined) return result.startError ?? 'could not be started';
  const stderr = result.stderr.trim();
  return `exit ${result.exitCode}${stderr ? `: ${stderr}` : ''}`;
}
