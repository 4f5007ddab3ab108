import type { Transaction } from './reconcile.js';
import { type Cidr, chainName, type Family, type Match, type Rule, type Target } from './rules.js';

const cidr = (c: Cidr) => `${c.address}/${c.prefix}`;
const not = (negate: boolean | undefined) => (negate ? '! ' : '');

function renderMatch(match: Match, previous: readonly Match[]): string {
  switch (match.kind) {
    case 'protocol':
      return `-p ${match.proto}`;
    case 'inInterface':
      return `-i ${match.name}`;
    case 'outInterface':
      return `-o ${match.name}`;
    case 'source':
      return `${not(match.negate)}-s ${cidr(match.cidr)}`;
    case 'destination':
      return `${not(match.negate)}-d ${cidr(match.cidr)}`;
    case 'destinationPort':
      if (!previous.some((m) => m.kind === 'protocol')) {
        throw new Error('a destinationPort match needs a protocol match before it');
      }
      return `--dport ${match.port}`;
    case 'owner':
      return `-m owner ${not(match.negate)}--${match.by}-owner ${match.id}`;
  }
}

function renderTarget(target: Target, prefix: string): string {
  switch (target.kind) {
    case 'return':
      return '-j RETURN';
    case 'jump':
      return `-j ${chainName(prefix, target.chain)}`;
    case 'redirect':
      return `-j REDIRECT --to-ports ${target.toPort}`;
  }
}

export function renderRule(rule: Rule, prefix: string): string {
  const parts = [`-A ${chainName(prefix, rule.chain)}`];
  rule.matches.forEach((match, i) => {
    parts.push(renderMatch(match, rule.matches.slice(0, i)));
  });
  // Comments are fixed text from the planner: no quotes or backslashes to escape.
  parts.push(`-m comment --comment "mesh-init: ${rule.why}"`);
  parts.push(renderTarget(rule.target, prefix));
  return parts.join(' ');
}

/** A planned rule the way iptables-save lists it: its chain, and what follows `-A CHAIN`. */
export function ruleSpec(rule: Rule, prefix: string): { chain: string; spec: string } {
  const chain = chainName(prefix, rule.chain);
  return { chain, spec: renderRule(rule, prefix).slice(`-A ${chain} `.length) };
}

/** The program that reads each family's text. */
export function restoreCommandFor(family: Family): string {
  return family === 'ipv4' ? 'iptables-restore' : 'ip6tables-restore';
}

/**
 * The exact input of one `*-restore --noflush` run. Dry-run prints this string and
 * apply feeds this string; nothing else produces restore text.
 */
export function renderRestore(tx: Transaction): string {
  const { prefix } = tx;
  const lines = [
    `# mesh-init: ${tx.family} nat ${tx.purpose} for ${restoreCommandFor(tx.family)} --noflush`,
    '*nat',
    ...tx.declare.map((chain) => `:${chainName(prefix, chain)} - [0:0]`),
    ...tx.unhook.map((rule) => `-D ${rule.chain} ${rule.spec}`),
    ...tx.recreate.map((chain) => `-X ${chainName(prefix, chain)}`),
    ...tx.recreate.map((chain) => `-N ${chainName(prefix, chain)}`),
    ...tx.rules.map((rule) => renderRule(rule, prefix)),
    ...tx.remove.map((chain) => `-X ${chainName(prefix, chain)}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
