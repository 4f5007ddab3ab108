/**
 * Two families' rule lists of one chain as one inet chain. Pure and generic: the
 * items are compared by a key only.
 */
import type { Family } from '../../config/net.js';

export interface Merged<T> {
  readonly item: T;
  /** Whose list it came from: both, or one family only. */
  readonly family: Family | 'both';
}

/** The longest common subsequence of two key lists, as pairs of indexes. */
function commonSubsequence(a: readonly string[], b: readonly string[]): [number, number][] {
  // lengths[i][j]: the LCS of a[i..] and b[j..]. Chains hold tens of rules.
  const lengths = Array.from({ length: a.length + 1 }, () =>
    new Array<number>(b.length + 1).fill(0),
  );
  const at = (i: number, j: number) => lengths[i]?.[j] ?? 0;
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      const row = lengths[i] as number[];
      row[j] = a[i] === b[j] ? at(i + 1, j + 1) + 1 : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const pairs: [number, number][] = [];
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    if (a[i] === b[j]) pairs.push([i++, j++]);
    else if (at(i + 1, j) >= at(i, j + 1)) i++;
    else j++;
  }
  return pairs;
}

/**
 * One list that holds each family's list in its own order: the items the two share
 * (their longest common subsequence) once, for both; between two shared items, the
 * IPv4-only and the IPv6-only ones taken in turn (Istio's look: a rule's `ip` form,
 * then its `ip6` form). Filtering the result by a family gives that family's list.
 */
export function mergeFamilies<T>(
  ipv4: readonly T[],
  ipv6: readonly T[],
  key: (item: T) => string,
): Merged<T>[] {
  const pairs = commonSubsequence(ipv4.map(key), ipv6.map(key));
  const merged: Merged<T>[] = [];
  let i = 0;
  let j = 0;
  const zipUntil = (endI: number, endJ: number) => {
    while (i < endI || j < endJ) {
      if (i < endI) merged.push({ item: ipv4[i++] as T, family: 'ipv4' });
      if (j < endJ) merged.push({ item: ipv6[j++] as T, family: 'ipv6' });
    }
  };
  for (const [pi, pj] of pairs) {
    zipUntil(pi, pj);
    merged.push({ item: ipv4[pi] as T, family: 'both' });
    i = pi + 1;
    j = pj + 1;
  }
  zipUntil(ipv4.length, ipv6.length);
  return merged;
}
