import { EXIT_OK, UsageError } from '../../errors.js';
import { injectManifest } from './inject.js';
import { parseInjectCommandLine } from './options.js';

/** The shell around injectManifest: read the input, print the result and the notices. */

export interface InjectDeps {
  /** The file's text; `-` is standard input. */
  readonly readInput: (filename: string) => Promise<string>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export async function runInject(argv: readonly string[], deps: InjectDeps): Promise<number> {
  const parsed = await parseInjectCommandLine(argv);
  if (parsed.kind === 'help') {
    deps.stdout(`${parsed.text}\n`);
    return EXIT_OK;
  }
  let text: string;
  try {
    text = await deps.readInput(parsed.filename);
  } catch (error) {
    throw new UsageError(
      `invalid --filename ${parsed.filename}: cannot read it (${(error as Error).message})`,
    );
  }
  const result = injectManifest(text, parsed.settings);
  for (const notice of result.notices) {
    deps.stderr(`mesh-init: ${notice.level === 'warning' ? 'warning: ' : ''}${notice.message}\n`);
  }
  deps.stdout(result.output);
  return EXIT_OK;
}
