import { parseCommandLine } from '../src/cli/args.js';
import { type Config, validateConfig, withResolvers } from '../src/config/config.js';
import { parseResolvConf } from '../src/config/resolv.js';

export type Env = Record<string, string>;

/** argv + environment → the validated Config, as main() would get it. */
export async function configFrom(argv: readonly string[], env: Env = {}): Promise<Config> {
  const parsed = await parseCommandLine(argv, env);
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
  return validateConfig(parsed.options);
}

/** The config with the resolvers of a resolv.conf text, as the shell (readResolvers) fills them in. */
export function withResolvConf(config: Config, resolvConf: string): Config {
  return withResolvers(config, parseResolvConf(resolvConf).resolvers);
}
