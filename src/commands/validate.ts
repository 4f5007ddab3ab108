/**
 * --run-validation: per captured family, a probe connection that the planned rules
 * must capture for the identity mesh-init runs as, and proof that it landed where
 * they send it. The plan, traced, picks the probe: as the proxy UID that is its
 * connection to a pod address over lo (→ the inbound capture port), as any other
 * UID a connection that leaves the pod (→ the proxy port). See docs/validation.md.
 */
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import { INBOUND_PASSTHROUGH } from '../plan/matches.js';
import { type LocalConnection, traceLocalConnection } from '../plan/trace.js';
import type { LocalAddress } from '../system/interfaces.js';
import type { Probe, ProbeOutcome, ValidationResult } from '../system/probe.js';

export interface ValidationDeps {
  /** Whom the owner match sees: the effective UID and GID. */
  readonly identity: { readonly uid: number; readonly gid: number };
  /** The pod's addresses, read when the validation starts. */
  readonly addresses: () => readonly LocalAddress[];
  readonly probe: (probe: Probe) => Promise<ProbeOutcome>;
  /** Milliseconds, for the one deadline all probes of a family share. */
  readonly clock: () => number;
}

/** A connection the validation could make. */
interface Candidate {
  readonly destination: string;
  /** The loopback address, for a destination over lo: never the passthrough source, which is not captured. */
  readonly source?: string;
  readonly outInterface?: string;
  /** Why this address: where it came from. */
  readonly origin: string;
}

const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.1', ipv6: '::1' };
/** TEST-NET-1 and IPv6's documentation prefix: nothing serves them. */
const DOCUMENTATION: Record<Family, string> = { ipv4: '192.0.2.1', ipv6: '2001:db8::1' };

const endpoint = (address: string, port: number) =>
  address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;

function isLoopback(address: string): boolean {
  return ipaddr.parse(address).range() === 'loopback';
}

function holds(local: readonly LocalAddress[], address: string): boolean {
  const wanted = ipaddr.parse(address).toNormalizedString();
  return local.some((a) => ipaddr.parse(a.address).toNormalizedString() === wanted);
}

/** A pod address and a loopback range go over lo; anything else leaves the pod. */
function over(local: readonly LocalAddress[], family: Family, destination: string, origin: string) {
  if (isLoopback(destination) || holds(local, destination)) {
    return { destination, source: LOOPBACK[family], outInterface: 'lo', origin };
  }
  return { destination, origin };
}

/**
 * An address on the subnet of the pod's first interface of the family, held by no
 * interface of the pod: its connected route exists without a default route. The
 * subnet's last host, or the one before it when the pod holds that one.
 */
function subnetNeighbour(local: readonly LocalAddress[], family: Family): Candidate | undefined {
  const bits = family === 'ipv4' ? 32 : 128;
  for (const a of local) {
    if (a.family !== family || a.name === 'lo' || a.prefix > bits - 2) continue;
    const parsed = ipaddr.parse(a.address);
    if (['linkLocal', 'loopback'].includes(parsed.range())) continue;
    const bytes = parsed.toByteArray();
    for (let bit = a.prefix; bit < bits; bit++) {
      const index = Math.floor(bit / 8);
      bytes[index] = (bytes[index] ?? 0) | (0x80 >> (bit % 8));
    }
    // IPv4's last address is the broadcast address: start one below it.
    const steps = family === 'ipv4' ? [1, 2] : [0, 1];
    for (const step of steps) {
      const candidate = [...bytes];
      for (let i = candidate.length - 1, borrow = step; i >= 0 && borrow > 0; i--) {
        const value = (candidate[i] ?? 0) - borrow;
        candidate[i] = (value + 256) % 256;
        borrow = value < 0 ? 1 : 0;
      }
      const address = ipaddr.fromByteArray(candidate).toString();
      if (!holds(local, address)) {
        return { destination: address, outInterface: a.name, origin: `on ${a.name}'s subnet` };
      }
    }
  }
  return undefined;
}

/** The addresses the validation may probe in one family, most likely first. */
function candidatesFor(config: Config, family: Family, local: readonly LocalAddress[]) {
  const given = config.probe.addresses[family];
  if (given !== undefined) return { candidates: [over(local, family, given, '--probe-address')] };
  const passthrough = INBOUND_PASSTHROUGH[family].address;
  const skipped: string[] = [];
  const candidates: Candidate[] = [];
  // ::6 is on lo once mesh-init captured IPv6; without it the proxy has no probe over lo.
  if (isLoopback(passthrough) || holds(local, passthrough)) {
    candidates.push(over(local, family, passthrough, 'a pod address over lo'));
  } else {
    skipped.push(`${passthrough} is not on lo (mesh-init adds it when it captures IPv6)`);
  }
  candidates.push(over(local, family, DOCUMENTATION[family], 'a documentation address'));
  const neighbour = subnetNeighbour(local, family);
  if (neighbour !== undefined) candidates.push(neighbour);
  return { candidates, skipped };
}

/** Which candidates the planned rules capture for this identity, and why the others are not. */
function capturedCandidates(
  config: Config,
  family: Family,
  deps: ValidationDeps,
  local: readonly LocalAddress[],
) {
  const { uid, gid } = deps.identity;
  const { candidates, skipped = [] } = candidatesFor(config, family, local);
  const captured: (Candidate & { toPort: number })[] = [];
  const notCaptured = [...skipped];
  for (const candidate of candidates) {
    const connection: LocalConnection = {
      family,
      destination: candidate.destination,
      destinationPort: config.probe.port,
      uid,
      gid,
      ...(candidate.source === undefined ? {} : { source: candidate.source }),
      ...(candidate.outInterface === undefined ? {} : { outInterface: candidate.outInterface }),
    };
    const trace = traceLocalConnection(config, connection);
    if (trace.captured) {
      captured.push({ ...candidate, toPort: trace.toPort });
    } else {
      const via = candidate.outInterface === 'lo' ? ' over lo' : '';
      notCaptured.push(
        `${endpoint(candidate.destination, config.probe.port)}${via} (${candidate.origin}) is not captured: ${trace.why ?? 'no rule of mesh-init takes it'}`,
      );
    }
  }
  return { captured, notCaptured };
}

/** Probes the captured candidates in order until one answers or the deadline passes. */
async function validateFamily(
  config: Config,
  family: Family,
  deps: ValidationDeps,
  local: readonly LocalAddress[],
): Promise<ValidationResult> {
  const { uid, gid } = deps.identity;
  const { captured, notCaptured } = capturedCandidates(config, family, deps, local);
  if (captured.length === 0) {
    return {
      ok: false,
      detail: `${family}: nothing to probe as uid ${uid} gid ${gid}, the rules these flags make capture none of: ${notCaptured.join('; ')}`,
    };
  }
  const deadline = deps.clock() + config.probe.timeoutMs;
  const noRoute: string[] = [];
  for (const candidate of captured) {
    const timeoutMs = deadline - deps.clock();
    if (timeoutMs <= 0) break;
    const outcome = await deps.probe({
      family,
      destination: candidate.destination,
      port: config.probe.port,
      landingPort: candidate.toPort,
      timeoutMs,
      ...(candidate.source === undefined ? {} : { source: candidate.source }),
    });
    if (outcome.kind === 'no route') {
      noRoute.push(`${outcome.detail} (${candidate.origin})`);
      continue;
    }
    const tried = noRoute.length > 0 ? ` (first tried: ${noRoute.join('; ')})` : '';
    return {
      ok: outcome.kind === 'landed',
      detail: `${family}: as uid ${uid} gid ${gid}, ${outcome.detail}${tried}`,
    };
  }
  if (noRoute.length < captured.length) {
    return {
      ok: false,
      detail: `${family}: as uid ${uid} gid ${gid}, --probe-timeout (${config.probe.timeoutMs} ms) ran out before a probe answered: ${noRoute.join('; ')}`,
    };
  }
  return {
    ok: false,
    detail: `${family}: as uid ${uid} gid ${gid}, no probe could be sent: ${noRoute.join('; ')} (a pod whose only routes are on lo has no outbound path; the proxy UID's probe needs only lo)`,
  };
}

/** Every captured family is probed, at the same time; it passes when all of them pass. */
export async function validateCapture(
  config: Config,
  families: readonly Family[],
  deps: ValidationDeps,
): Promise<ValidationResult> {
  const local = deps.addresses();
  const results = await Promise.all(
    families.map((family) => validateFamily(config, family, deps, local)),
  );
  return {
    ok: results.every((r) => r.ok),
    detail: results.map((r) => r.detail).join('; '),
  };
}
