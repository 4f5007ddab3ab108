import { describe, it } from 'vitest';
import { missingPrerequisites } from './pod.js';

/**
 * A describe() that needs root and the real tools. Where they are missing it says
 * so in one line and skips; under CI=true it fails instead, never a silent skip.
 */
export function kernelSuite(name: string, body: () => void): void {
  const missing = missingPrerequisites();
  if (missing === undefined) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has what the kernel suite needs', () => {
        throw new Error(`kernel suite cannot run under CI: ${missing}`);
      });
    });
  } else {
    console.warn(
      `[kernel] SKIPPED "${name}": ${missing}. Run as root with iptables, nftables, iproute2 and python3 installed (bash .ci/run installs them).`,
    );
    describe.skip(name, body);
  }
}
