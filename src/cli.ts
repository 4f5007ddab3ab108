import { type Deps, runMeshInit } from './apply.js';
import { parseCommandLine } from './args.js';
import { validateConfig } from './config.js';
import { EXIT_INTERNAL, EXIT_OK, MeshInitError } from './errors.js';
import { VERSION } from './version.js';

/**
 * argv + environment → exit code. The only place that turns errors into exit codes
 * and messages; it never prints a stack trace.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  deps: Deps,
): Promise<number> {
  try {
    const parsed = await parseCommandLine(argv, env);
    if (parsed.kind === 'help') {
      deps.stdout(`${parsed.text}\n`);
      return EXIT_OK;
    }
    if (parsed.kind === 'version') {
      deps.stdout(`${VERSION}\n`);
      return EXIT_OK;
    }
    await runMeshInit(validateConfig(parsed.options), deps);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof MeshInitError) {
      deps.stderr(`mesh-init: ${error.message}\n`);
      return error.exitCode;
    }
    deps.stderr(`mesh-init: internal error: ${(error as Error)?.message ?? String(error)}\n`);
    return EXIT_INTERNAL;
  }
}
