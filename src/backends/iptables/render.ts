import type { Cidr, Family } from '../../config/net.js';
import { chainName, type Mark, type Match, type Rule, type Target } from '../../plan/rules.js';
import type { Transaction } from './transaction.js';

const cidr = (c: Cidr) => `${c.address}/${c.prefix}`;
const not = (negate: boolean | undefined) => (negate ? '! ' : '');
/** Marks and masks are written as `iptables-save` prints them, so live and planned rules compare equal. */
const hex = (mark: Mark) => `0x${mark.toString(16)}`;
const ALL_BITS = '0xffffffff';

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
    case 'sourcePort':
      if (!previous.some((m) => m.kind === 'protocol')) {
        throw new Error(`a ${match.kind} match needs a protocol match before it`);
      }
      return match.kind === 'sourcePort'
        ? `--sport ${match.port}`
        : `${not(match.negate)}--dport ${match.port}`;
    case 'destinationPorts':
      if (!previous.some((m) => m.kind === 'protocol')) {
        throw new Error('a destinationPorts match needs a protocol match before it');
      }
      return `-m multiport ${not(match.negate)}--dports ${match.ports.join(',')}`;
    case 'owner':
      return `-m owner ${not(match.negate)}--${match.by}-owner ${match.id}`;
    case 'mark':
      return `-m mark ${not(match.negate)}--mark ${hex(match.mark)}`;
    case 'connmark':
      return `-m connmark --mark ${hex(match.mark)}`;
    case 'ctstate':
      return `-m conntrack --ctstate ${match.states.join(',')}`;
  }
}

function renderTarget(target: Target, prefix: string, family: Family): string {
  switch (target.kind) {
    case 'return':
      return '-j RETURN';
    case 'accept':
      return '-j ACCEPT';
    case 'drop':
      return '-j DROP';
    case 'jump':
      return `-j ${chainName(prefix, target.chain)}`;
    case 'redirect':
      return `-j REDIRECT --to-ports ${target.toPort}`;
    case 'tproxy': {
      const anyAddress = family === 'ipv4' ? '0.0.0.0' : '::';
      return `-j TPROXY --on-port ${target.toPort} --on-ip ${anyAddress} --tproxy-mark ${hex(target.mark)}/${ALL_BITS}`;
    }
    case 'setMark':
      return `-j MARK --set-xmark ${hex(target.mark)}/${ALL_BITS}`;
    case 'saveMark':
      return `-j CONNMARK --save-mark --nfmask ${ALL_BITS} --ctmask ${ALL_BITS}`;
    case 'restoreMark':
      return `-j CONNMARK --restore-mark --nfmask ${ALL_BITS} --ctmask ${ALL_BITS}`;
    case 'conntrackZone':
      return `-j CT --zone ${target.zone}`;
  }
}

/** `-A CHAIN …`, or `-I CHAIN position …` to insert at a place in the chain. */
export function renderRule(rule: Rule, prefix: string, family: Family, position?: number): string {
  const chain = chainName(prefix, rule.chain);
  const parts = [position === undefined ? `-A ${chain}` : `-I ${chain} ${position}`];
  rule.matches.forEach((match, i) => {
    parts.push(renderMatch(match, rule.matches.slice(0, i)));
  });
  // Comments are fixed text from the planner: no quotes or backslashes to escape.
  parts.push(`-m comment --comment "mesh-init: ${rule.why}"`);
  parts.push(renderTarget(rule.target, prefix, family));
  return parts.join(' ');
}

/** A planned rule the way iptables-save lists it: its chain, and what follows `-A CHAIN`. */
export function ruleSpec(
  rule: Rule,
  prefix: string,
  family: Family,
): { chain: string; spec: string } {
  const chain = chainName(prefix, rule.chain);
  return { chain, spec: renderRule(rule, prefix, family).slice(`-A ${chain} `.length) };
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
  const { prefix, family } = tx;
  // Jumps from the kernel's chains go first, in plan order: no other rule in the pod
  // (Docker's DNS redirect, say) sees a packet before capture does, and what
  // mesh-init returns goes on through those rules as before.
  const inserted = new Map<string, number>();
  const render = (rule: Rule) => {
    if (rule.chain.kind === 'owned') return renderRule(rule, prefix, family);
    const position = (inserted.get(rule.chain.name) ?? 0) + 1;
    inserted.set(rule.chain.name, position);
    return renderRule(rule, prefix, family, position);
  };
  const lines = [
    `# mesh-init: ${family} ${tx.table} ${tx.purpose} for ${restoreCommandFor(family)} --noflush`,
    `*${tx.table}`,
    ...tx.declare.map((chain) => `:${chainName(prefix, chain)} - [0:0]`),
    ...tx.unhook.map((rule) => `-D ${rule.chain} ${rule.spec}`),
    ...tx.recreate.map((chain) => `-X ${chainName(prefix, chain)}`),
    ...tx.recreate.map((chain) => `-N ${chainName(prefix, chain)}`),
    ...tx.rules.map(render),
    ...tx.remove.map((chain) => `-X ${chainName(prefix, chain)}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
