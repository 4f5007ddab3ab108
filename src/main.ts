import { networkInterfaces } from 'node:os';
import { main } from './cli.js';
import { hasGlobalIpv6 } from './interfaces.js';
import { runCommand } from './iptables.js';

// The only module that touches `process`.
process.exitCode = await main(process.argv.slice(2), process.env, {
  run: runCommand,
  hasGlobalIpv6: () => hasGlobalIpv6(networkInterfaces()),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
