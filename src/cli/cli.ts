import type { InjectDeps } from '../commands/inject/command.js';
import { type Deps, runMeshInit } from '../commands/run.js';
import { validateConfig } from '../config/config.js';
import { EXIT_INTERNAL, EXIT_OK, MeshInitError } from '../errors.js';
import { createLogger, describeConfig, formatConfig } from '../log.js';
import { VERSION } from '../version.js';
import { parseCommandLine } from './args.js';

/**
 * argv + environment → exit code. The only place that turns errors into exit codes
 * and messages; it never prints a stack trace.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  deps: Deps & { readonly readInput?: InjectDeps['readInput'] },
): Promise<number> {
  // Until the flags are validated, a guess: JSON as soon as it was asked for, so that
  // even a usage error is logged the way the user reads logs.
  const asked = (arg: string, i: number) =>
    arg === '--log-format=json' ||
    arg === '--log_as_json' ||
    arg === '--log_as_json=true' ||
    (arg === '--log-format' && argv[i + 1] === 'json');
  const guess =
    argv.some(asked) ||
    (!argv.some((arg) => arg.startsWith('--log-format')) && env.MESH_INIT_LOG_FORMAT === 'json');
  let log = createLogger(guess ? 'json' : 'text', deps.stderr, deps.now);
  try {
    if (argv[0] === 'inject') {
      const { readInput } = deps;
      if (readInput === undefined) throw new Error('inject needs a way to read its input');
      // Loaded only here: the init container's own run does not pay for the YAML parser.
      const { runInject } = await import('../commands/inject/command.js');
      return await runInject(argv.slice(1), { ...deps, readInput });
    }
    const parsed = await parseCommandLine(argv, env);
    if (parsed.kind === 'help') {
      deps.stdout(`${parsed.text}\n`);
      return EXIT_OK;
    }
    if (parsed.kind === 'version') {
      deps.stdout(`${VERSION}\n`);
      return EXIT_OK;
    }
    const config = validateConfig(parsed.options);
    log = createLogger(config.logFormat, deps.stderr, deps.now);
    log.info('config', `config: ${formatConfig(config)}`, { config: describeConfig(config) });
    for (const note of config.notes) log.info('note', `note: ${note}`);
    return await runMeshInit(config, deps, log);
  } catch (error) {
    if (error instanceof MeshInitError) {
      log.error('failed', error.message, { exitCode: error.exitCode });
      return error.exitCode;
    }
    log.error('failed', `internal error: ${(error as Error)?.message ?? String(error)}`, {
      exitCode: EXIT_INTERNAL,
    });
    return EXIT_INTERNAL;
  }
}
