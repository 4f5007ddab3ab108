// The entry of the image's V8 start-up snapshot (docs/startup.md). Built once, in
// the image, by the very node that runs it:
//
//   node --snapshot-blob mesh-init.blob --build-snapshot mesh-init-snapshot.cjs
//
// Building evaluates every module (yargs, execa and ours), then warms up: main()
// runs over the command lines a pod uses, against a system that starts nothing and
// prints nothing, and execa starts `node --version` twice, so that the functions a
// run needs are compiled already (the snapshot keeps their bytecode). A process
// started from the snapshot only deserialises that heap and calls runProcess(),
// as the plain entry (main.ts) does.
import { startupSnapshot } from 'node:v8';
import type { Deps } from '../commands/run.js';
import { type CommandResult, runCommand } from '../system/exec.js';
import { main } from './cli.js';
import { runProcess } from './process.js';

/** Command lines whose paths a pod takes, with the exit code each must give here. */
const WARM_UP: readonly (readonly [argv: readonly string[], exitCode: number])[] = [
  [['-p', '15001', '-u', '1337'], 0],
  [['-p', '15001', '-u', '1337', '--ipv6', 'false', '--iptables-backend', 'nft'], 0],
  [['-p', '15001', '-u', '1337', '--ipv6', 'false', '--iptables-backend', 'legacy'], 0],
  [['--dry-run', '-p', '15001', '-u', '1337', '--ipv6', 'true'], 0],
  [['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*'], 0],
  [['--log-format', 'json', '-p', '15001'], 0],
  [['--native-nftables', '-p', '15001', '-u', '1337', '--ipv6', 'true'], 0],
  [['--help'], 0],
  [['--version'], 0],
  [['--proxy-port', '70000'], 2],
  [['--no-such-flag'], 2],
];

/** A system where every program succeeds and prints nothing: nothing is started. */
function inertDeps(): Deps {
  const ok: CommandResult = { exitCode: 0, stdout: '', stderr: '' };
  return {
    run: async () => ok,
    addressFamilies: () => ({ ipv4: false, ipv6: true }),
    stdout: () => {},
    stderr: () => {},
    sleep: async () => {},
    now: () => new Date(0),
    random: () => 0,
    readResolvConf: async () => 'nameserver 10.96.0.10\n',
    readGroupFile: async () => 'root:x:0:\n',
    validate: async () => ({ ok: true, detail: 'warm-up' }),
  };
}

async function warmUp(): Promise<void> {
  for (const [argv, expected] of WARM_UP) {
    const code = await main(argv, {}, inertDeps());
    if (code !== expected) {
      throw new Error(
        `snapshot warm-up: mesh-init ${argv.join(' ')} gave ${code}, not ${expected}`,
      );
    }
  }
  // execa's spawn path, as a run takes it: once without stdin, once with the
  // restore text on stdin. Both children have exited before the heap is written.
  for (const input of [undefined, 'x\n']) {
    const args = input === undefined ? ['--version'] : ['-e', 'process.stdin.resume()'];
    const result = await runCommand(process.execPath, args, input);
    if (result.exitCode !== 0) {
      throw new Error(
        `snapshot warm-up: ${process.execPath} ${args.join(' ')} gave ${result.exitCode}`,
      );
    }
  }
}

startupSnapshot.setDeserializeMainFunction(() => {
  void runProcess(process.argv.slice(2));
});

// A failed warm-up is an unhandled rejection: node exits non-zero and writes no blob.
void warmUp();
