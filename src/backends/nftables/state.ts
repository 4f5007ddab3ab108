/**
 * What `nft -j list ruleset inet` says of mesh-init's tables, read as data (the
 * JSON schema of libnftables) into the terms the script writes, so that --check
 * compares like with like. Pure; unknown expressions are kept, spelled as JSON,
 * so they show as drift instead of being dropped.
 */
import ipaddr from 'ipaddr.js';
import { withoutDottedQuad } from '../../config/resolv.js';
import type { NftRule } from './render.js';

export interface LiveBase {
  readonly type: string;
  readonly hook: string;
  readonly priority: number;
  readonly policy: string;
}

export interface LiveChain {
  readonly name: string;
  readonly base?: LiveBase;
  readonly rules: readonly NftRule[];
}

export interface LiveTable {
  readonly name: string;
  readonly chains: readonly LiveChain[];
}

type Json = null | boolean | number | string | Json[] | { readonly [key: string]: Json };
type JsonObject = { readonly [key: string]: Json };

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The one key of a libnftables object (`{"match": {…}}`) and its body. */
function single(value: Json | undefined): [string, Json] | undefined {
  if (!isObject(value)) return undefined;
  const entries = Object.entries(value);
  return entries.length === 1 ? entries[0] : undefined;
}

/**
 * An address as the plan writes it (ipaddr.js's spelling). nft prints IPv6 as
 * inet_ntop does (`::127.0.0.53`), which ipaddr.js would read as IPv4-mapped.
 */
function normalAddress(text: string): string {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return text;
  const plain = withoutDottedQuad(text);
  return plain !== undefined && ipaddr.IPv6.isValid(plain)
    ? ipaddr.IPv6.parse(plain).toString()
    : text;
}

const json = (value: Json) => `json ${JSON.stringify(value)}`;

/** The left side of a match, or the key of a `set` statement: `meta l4proto`, `ip daddr`, `ct state`. */
function operand(value: Json | undefined): string | undefined {
  const [kind, body] = single(value) ?? [];
  if (!isObject(body)) return undefined;
  if (kind === 'meta' && typeof body.key === 'string') {
    return body.key === 'iifname' || body.key === 'oifname' ? body.key : `meta ${body.key}`;
  }
  if (kind === 'payload' && typeof body.protocol === 'string' && typeof body.field === 'string') {
    return `${body.protocol} ${body.field}`;
  }
  if (kind === 'ct' && typeof body.key === 'string') return `ct ${body.key}`;
  return undefined;
}

const isAddressField = (left: string) => /^ip6? (saddr|daddr)$/.test(left);

/** The right side of a match, spelled for its left side. */
function operandValue(left: string, value: Json): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') {
    if (left === 'iifname' || left === 'oifname') return `"${value}"`;
    return isAddressField(left) ? normalAddress(value) : value;
  }
  // Flags (ct state established,related), in a fixed order.
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
    return [...value].sort().join(',');
  }
  const [kind, body] = single(value) ?? [];
  if (kind === 'prefix' && isObject(body) && typeof body.addr === 'string') {
    return `${normalAddress(body.addr)}/${body.len}`;
  }
  // An anonymous set (`tcp dport != { 53, 15008 }`): its elements in a fixed order.
  if (kind === 'set' && Array.isArray(body)) {
    const items = body.map((item) => operandValue(left, item));
    return `{ ${items.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).join(', ')} }`;
  }
  return JSON.stringify(value);
}

/** One match expression as the script spells it. */
function matchTerm(body: Json): string {
  if (!isObject(body) || body.right === undefined) return json({ match: body });
  const left = operand(body.left);
  if (left === undefined) return json({ match: body });
  const right = operandValue(left, body.right);
  // `in` is how flags (ct state) and sets come back for a plain match.
  if (body.op === '==' || body.op === 'in') return `${left} ${right}`;
  if (body.op === '!=') return `${left} != ${right}`;
  return `${left} ${String(body.op)} ${right}`;
}

const VERDICTS = ['accept', 'drop', 'return', 'continue'];

/** One statement as the script spells it; undefined for a counter, whose numbers change. */
function actionTerm(kind: string, body: Json): string | undefined {
  if (kind === 'counter') return undefined;
  if (VERDICTS.includes(kind) && body === null) return kind;
  if ((kind === 'jump' || kind === 'goto') && isObject(body) && typeof body.target === 'string') {
    return `${kind} ${body.target}`;
  }
  if (kind === 'redirect' && (body === null || isObject(body))) {
    return isObject(body) && body.port !== undefined ? `redirect to :${body.port}` : 'redirect';
  }
  if (kind === 'tproxy' && isObject(body) && body.port !== undefined) {
    const family = typeof body.family === 'string' ? `${body.family} ` : '';
    const address = typeof body.addr === 'string' ? normalAddress(body.addr) : '';
    return `tproxy ${family}to ${address}:${body.port}`;
  }
  if (kind === 'mangle' && isObject(body)) {
    const key = operand(body.key);
    const value = typeof body.value === 'number' ? String(body.value) : operand(body.value);
    if (key !== undefined && value !== undefined) return `${key} set ${value}`;
  }
  return json({ [kind]: body });
}

function liveRule(body: JsonObject): NftRule {
  const matches: string[] = [];
  const actions: string[] = [];
  for (const expr of Array.isArray(body.expr) ? body.expr : []) {
    const [kind, inner] = single(expr) ?? ['', expr];
    if (kind === 'match') matches.push(matchTerm(inner));
    else {
      const term = kind === '' ? json(expr) : actionTerm(kind, inner);
      if (term !== undefined) actions.push(term);
    }
  }
  return { matches, actions, comment: typeof body.comment === 'string' ? body.comment : '' };
}

function liveBase(body: JsonObject): LiveBase | undefined {
  if (typeof body.hook !== 'string') return undefined;
  return {
    type: String(body.type),
    hook: body.hook,
    priority: Number(body.prio),
    policy: String(body.policy ?? 'accept'),
  };
}

/**
 * The inet tables named in `tables`, from `nft -j list ruleset inet`, in the order
 * nft lists them (rules in chain order). Throws on text that is not nft's JSON.
 */
export function parseRuleset(text: string, tables: readonly string[]): LiveTable[] {
  const parsed = JSON.parse(text) as Json;
  if (!isObject(parsed) || !Array.isArray(parsed.nftables)) {
    throw new Error('not the JSON of nft -j: no "nftables" list');
  }
  type Building = { name: string; base?: LiveBase; rules: NftRule[] };
  const found = new Map<string, Map<string, Building>>();
  const ours = (body: JsonObject, key: 'name' | 'table') =>
    body.family === 'inet' && typeof body[key] === 'string' && tables.includes(body[key]);
  for (const item of parsed.nftables) {
    const [kind, body] = single(item) ?? [];
    if (!isObject(body)) continue;
    if (kind === 'table' && ours(body, 'name')) {
      found.set(body.name as string, new Map());
    } else if (kind === 'chain' && ours(body, 'table') && typeof body.name === 'string') {
      const base = liveBase(body);
      found.get(body.table as string)?.set(body.name, {
        name: body.name,
        ...(base === undefined ? {} : { base }),
        rules: [],
      });
    } else if (kind === 'rule' && ours(body, 'table') && typeof body.chain === 'string') {
      found
        .get(body.table as string)
        ?.get(body.chain)
        ?.rules.push(liveRule(body));
    }
  }
  return [...found].map(([name, chains]) => ({ name, chains: [...chains.values()] }));
}
