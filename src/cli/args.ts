import type { Argv } from 'yargs';
import { FLAGS, type FlagSpec } from '../config/flags.js';
import type { GivenOption, GivenOptions } from '../config/given.js';
import { strictParser } from '../config/parser.js';
import { UsageError } from '../errors.js';

export type Parsed =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' }
  | { readonly kind: 'run'; readonly options: GivenOptions };

function buildParser(argv: readonly string[]): Argv {
  let parser = strictParser(
    argv,
    'mesh-init',
    "mesh-init [options]\nmesh-init inject -f FILE|-   add the init container to manifests (mesh-init inject --help)\n\nRedirect the pod's inbound and outbound TCP to the sidecar proxy (one atomic restore per table and IP family, or one nft transaction), then exit.\nEvery option can also be set by the environment variables named in brackets; a flag beats its variable.",
  ).option('version', { type: 'boolean', describe: 'show the version' });
  for (const flag of FLAGS) {
    parser = parser.option(flag.name, {
      type: flag.type,
      describe: `${flag.describe} [default: ${flag.defaultText}]${flag.env.length > 0 ? ` [env: ${flag.env.join(', ')}]` : ''}`,
      alias: [...(flag.short ? [flag.short] : []), ...(flag.aliases ?? [])],
    });
  }
  return parser;
}

function fromEnv(flag: FlagSpec, env: Readonly<Record<string, string | undefined>>) {
  for (const name of flag.env) {
    const value = env[name];
    if (value !== undefined) return { name, value };
  }
  return undefined;
}

function parseBooleanEnv(flag: FlagSpec, variable: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  // What Go's strconv.ParseBool takes, as Istio reads its variables.
  if (v === 'true' || v === '1' || v === 't') return true;
  if (v === 'false' || v === '0' || v === 'f' || v === '') return false;
  throw new UsageError(
    `invalid --${flag.name} (from ${variable}): expected true, false, 1, 0, t or f, got "${value}"`,
  );
}

/**
 * The first flag written twice, in any of its spellings (`-n --no-dry-run`, `-p 1 --proxy-port 2`).
 * yargs would quietly merge or keep the last one; a repeated flag is more likely a
 * templating mistake than an intent, so it is refused.
 */
function repeatedFlag(argv: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') break;
    let flag: FlagSpec | undefined;
    let attached = false;
    if (token.startsWith('--')) {
      const [name = '', ...value] = token.slice(2).split('=');
      const negated = name.startsWith('no-');
      attached = value.length > 0 || negated; // `--no-x` takes no value
      flag = FLAGS.find((f) =>
        [f.name, ...(f.aliases ?? [])].some((long) => long === name || `no-${long}` === name),
      );
    } else if (/^-[A-Za-z]/.test(token)) {
      flag = FLAGS.find((f) => f.short === token[1]);
      attached = token.length > 2;
    }
    if (flag === undefined) continue;
    if (seen.has(flag.name)) return flag.name;
    seen.add(flag.name);
    if (flag.type === 'string' && !attached) i++; // the next token is its value
  }
  return undefined;
}

/** Parses argv (strict: unknown flags are errors) and fills in from the environment. */
export async function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<Parsed> {
  // Istio's injector names the program first (`istio-iptables -p 15001 …`).
  if (argv[0] === 'istio-iptables') argv = argv.slice(1);
  const repeated = repeatedFlag(argv);
  if (repeated !== undefined) throw new UsageError(`invalid --${repeated}: given more than once`);
  const parser = buildParser(argv);
  const args = parser.parseSync() as Record<string, unknown>;
  if (args.help === true) return { kind: 'help', text: await parser.getHelp() };
  if (args.version === true) return { kind: 'version' };

  const options = new Map<string, GivenOption>();
  for (const flag of FLAGS) {
    const value = args[flag.name];
    if (typeof value === 'string' || typeof value === 'boolean') {
      options.set(flag.name, { value, origin: `--${flag.name}`, fromEnv: false });
      continue;
    }
    const variable = fromEnv(flag, env);
    if (variable === undefined) continue;
    const origin = `--${flag.name} (from ${variable.name})`;
    options.set(flag.name, {
      value:
        flag.type === 'boolean'
          ? parseBooleanEnv(flag, variable.name, variable.value)
          : variable.value,
      origin,
      fromEnv: true,
    });
  }
  return { kind: 'run', options };
}
