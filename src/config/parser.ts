/**
 * The one way mesh-init's programs read a command line with yargs: strict (unknown
 * flags are errors), numbers kept as text (validation reads them), `--no-x` for
 * booleans, no exit and no printing of its own: a usage error is a UsageError,
 * which the caller's one catch turns into exit 2.
 */
import yargs, { type Argv } from 'yargs';
import { UsageError } from '../errors.js';

export function strictParser(argv: readonly string[], scriptName: string, usage: string): Argv {
  return yargs([...argv])
    .scriptName(scriptName)
    .usage(usage)
    .parserConfiguration({
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': true,
      'camel-case-expansion': false,
    })
    .strict()
    .help(false)
    .version(false)
    .exitProcess(false)
    .wrap(100)
    .fail((message, error) => {
      throw new UsageError(message || error?.message || 'invalid command line');
    })
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' });
}
