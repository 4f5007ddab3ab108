/** The IP families mesh-init captures; a plan is made per family. */
export type Family = 'ipv4' | 'ipv6';

/** A validated network, already reduced to its network address (10.1.2.3/8 → 10.0.0.0/8). */
export interface Cidr {
  readonly family: Family;
  readonly address: string;
  readonly prefix: number;
}
