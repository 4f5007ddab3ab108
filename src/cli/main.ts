import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateCapture } from '../commands/validate.js';
import { runCommand } from '../system/exec.js';
import { addressFamilies, localAddresses } from '../system/interfaces.js';
import { probeConnection } from '../system/probe.js';
import { main } from './cli.js';

// The only module that touches `process`. Until main() settles the exit is a
// failure: a run that never finishes must not let the pod start uncaptured.
process.exitCode = 1;
void main(process.argv.slice(2), process.env, {
  run: runCommand,
  addressFamilies: () => addressFamilies(networkInterfaces()),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  sleep: (ms) => sleep(ms),
  now: () => new Date(),
  random: Math.random,
  readResolvConf: () => readFile('/etc/resolv.conf', 'utf8'),
  readGroupFile: () => readFile('/etc/group', 'utf8'),
  readInput: (filename) => (filename === '-' ? text(process.stdin) : readFile(filename, 'utf8')),
  validate: (config, families) =>
    validateCapture(config, families, {
      identity: { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 },
      addresses: () => localAddresses(networkInterfaces()),
      probe: (probe) => probeConnection(probe),
      clock: () => Date.now(),
    }),
}).then((code) => {
  process.exitCode = code;
});
