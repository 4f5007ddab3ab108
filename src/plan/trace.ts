/**
 * Where the planned nat rules send one locally made TCP connection: the first
 * packet's walk through OUTPUT, as the kernel makes it. --run-validation asks this
 * which probe the rules must capture for the identity it runs as, so the probe
 * follows the plan (and any change to it) instead of a second copy of its logic.
 */
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import { planNat } from './plan.js';
import type { ChainRef, Match, Rule } from './rules.js';

/** The first packet of a TCP connection this process makes. */
export interface LocalConnection {
  readonly family: Family;
  /** The source address, when the probe binds one; else the kernel's choice, which no rule names. */
  readonly source?: string;
  readonly destination: string;
  readonly destinationPort: number;
  /** `lo` for a destination the pod holds; a route's interface; undefined: some other interface no rule names. */
  readonly outInterface?: string;
  /** The socket's owner, as the owner match sees it (the file's fsuid and fsgid). */
  readonly uid: number;
  readonly gid: number;
}

export type Trace =
  | { readonly captured: true; readonly toPort: number; readonly why: string }
  /** `why` is the rule that let it go, or undefined when no rule of mesh-init's took it. */
  | { readonly captured: false; readonly why?: string };

/** Owned chains call each other at most two deep; a plan never loops. */
const MAX_DEPTH = 8;

function inCidr(address: string | undefined, cidr: { address: string; prefix: number }): boolean {
  if (address === undefined) return false;
  const parsed = ipaddr.parse(address);
  const network = ipaddr.parse(cidr.address);
  return parsed.kind() === network.kind() && parsed.match(network, cidr.prefix);
}

/** iptables' `+` wildcard: `eth+` is every name that starts with `eth`. */
function interfaceMatches(pattern: string, name: string | undefined): boolean {
  if (name === undefined) return false;
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** Whether one match holds for the connection's first packet (a new, unmarked TCP SYN). */
function matches(match: Match, c: LocalConnection): boolean {
  const flip = (hit: boolean, negate?: boolean) => (negate ? !hit : hit);
  switch (match.kind) {
    case 'protocol':
      return match.proto === 'tcp';
    case 'outInterface':
      return interfaceMatches(match.name, c.outInterface);
    case 'inInterface':
      // Locally made packets have no input interface in OUTPUT.
      return false;
    case 'source':
      return flip(inCidr(c.source, match.cidr), match.negate);
    case 'destination':
      return flip(inCidr(c.destination, match.cidr), match.negate);
    case 'destinationPort':
      return flip(match.port === c.destinationPort, match.negate);
    case 'destinationPorts':
      return flip(match.ports.includes(c.destinationPort), match.negate);
    case 'sourcePort':
      // An ephemeral port; the plan names only the DNS port here (below the ephemeral range).
      return false;
    case 'owner':
      return flip((match.by === 'uid' ? c.uid : c.gid) === match.id, match.negate);
    case 'mark':
      return flip(match.mark === 0, match.negate);
    case 'connmark':
      return match.mark === 0;
    case 'ctstate':
      // The first packet is NEW: none of INVALID, RELATED, ESTABLISHED.
      return false;
  }
}

/** How a chain ended: a final verdict, or back to its caller (by a RETURN, named, or off its end). */
type Walk =
  | { readonly end: 'verdict'; readonly trace: Trace }
  | { readonly end: 'return'; readonly why?: string };

function walk(rules: readonly Rule[], chain: ChainRef, c: LocalConnection, depth: number): Walk {
  if (depth > MAX_DEPTH) throw new Error('trace: the plan jumps deeper than any plan does');
  let returnedBy: string | undefined;
  const here = rules.filter((r) => r.chain.kind === chain.kind && r.chain.name === chain.name);
  for (const rule of here) {
    if (!rule.matches.every((m) => matches(m, c))) continue;
    const { target } = rule;
    switch (target.kind) {
      case 'redirect':
        return { end: 'verdict', trace: { captured: true, toPort: target.toPort, why: rule.why } };
      case 'accept':
      case 'drop':
      case 'tproxy':
        return { end: 'verdict', trace: { captured: false, why: rule.why } };
      case 'return':
        return { end: 'return', why: rule.why };
      case 'jump': {
        const inner = walk(rules, { kind: 'owned', name: target.chain }, c, depth + 1);
        if (inner.end === 'verdict') return inner;
        // Back from the called chain: the caller goes on after the jump.
        returnedBy = inner.why ?? returnedBy;
        break;
      }
      default:
        // Marks and conntrack zones do not end the walk.
        break;
    }
  }
  return returnedBy === undefined ? { end: 'return' } : { end: 'return', why: returnedBy };
}

/**
 * The planned nat OUTPUT's verdict for one connection: redirected to a port, or let
 * go (and by which rule). Foreign rules in the live table are not seen here; the
 * probe itself shows what the kernel does.
 */
export function traceLocalConnection(config: Config, c: LocalConnection): Trace {
  const { rules } = planNat(config, c.family);
  const result = walk(rules, { kind: 'builtin', name: 'OUTPUT' }, c, 0);
  if (result.end === 'verdict') return result.trace;
  // Out of OUTPUT (a RETURN there, or its end): the chain's policy lets it go.
  return result.why === undefined ? { captured: false } : { captured: false, why: result.why };
}
