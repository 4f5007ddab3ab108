// Bundles the CLI into one CommonJS file: one file to read at start-up is the
// cheapest way to start (an init container's whole run is mostly Node start-up),
// and Node loads CommonJS ~5 ms faster than the same code as an ES module.
//
// Three bundles: two of the same modules, differing only in their entry, and the
// CNI plugin's:
// - dist/mesh-init.cjs, the npm bin: runs main() as soon as it is loaded;
// - dist/mesh-init-snapshot.cjs, the entry of the image's V8 start-up snapshot
//   (`node --snapshot-blob X --build-snapshot dist/mesh-init-snapshot.cjs`, see
//   image/Dockerfile and docs/startup.md): it loads and warms up everything, and
//   leaves main() to run when a process starts from the snapshot;
// - dist/mesh-init-cni.cjs, the CNI plugin (docs/cni.md), which alone carries the
//   Kubernetes client.
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';

/** The process entry of the plain bundle. */
const ENTRY = 'src/cli/main.ts';
/** The entry the snapshot is built from. */
const SNAPSHOT_ENTRY = 'src/cli/snapshot.ts';
/** The CNI plugin's entry: a program of its own, as it carries the Kubernetes client (~4 MB). */
const CNI_ENTRY = 'src/cli/cni-main.ts';

/**
 * Module-level state that V8 cannot put into a start-up snapshot, made lazy at
 * bundle time (node_modules stays as npm installed it). Each rewrite must match
 * exactly once, so that an upgrade that changes the code fails the build here
 * instead of the snapshot build in the image.
 */
const SNAPSHOT_REWRITES = [
  {
    // string-width makes an Intl.Segmenter when loaded (yargs' help layout loads it):
    // an ICU object, which the snapshot cannot hold ("global handle not serialized").
    // Made on first use instead, and dropped before a snapshot is written (the
    // warm-up lays out --help).
    file: /[\\/]node_modules[\\/]string-width[\\/]index\.js$/,
    replace: [
      [
        'const segmenter = new Intl.Segmenter();',
        `let segmenter;
const getSegmenter = () => {
	if (segmenter === undefined) {
		segmenter = new Intl.Segmenter();
		const {startupSnapshot} = require('node:v8');
		if (startupSnapshot.isBuildingSnapshot()) {
			startupSnapshot.addSerializeCallback(() => {
				segmenter = undefined;
			});
		}
	}
	return segmenter;
};`,
      ],
      ['segmenter.segment(', 'getSegmenter().segment('],
    ],
  },
];

/** @type {import('esbuild').Plugin} */
const snapshotSafe = {
  name: 'snapshot-safe',
  setup(builder) {
    for (const rewrite of SNAPSHOT_REWRITES) {
      builder.onLoad({ filter: rewrite.file }, async ({ path }) => {
        let contents = await readFile(path, 'utf8');
        for (const [from, to] of rewrite.replace) {
          const count = contents.split(from).length - 1;
          if (count !== 1) {
            throw new Error(
              `snapshot-safe: expected "${from}" once in ${path}, found it ${count} times`,
            );
          }
          contents = contents.replace(from, to);
        }
        return { contents, loader: 'js' };
      });
    }
  },
};

/** @type {import('esbuild').BuildOptions} */
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: false,
  legalComments: 'none',
  // ES-module packages (yargs) ask import.meta.url where they live.
  define: { 'import.meta.url': '__meshInitUrl' },
  banner: {
    js: "#!/usr/bin/env node\n'use strict';\nconst __meshInitUrl = require('node:url').pathToFileURL(__filename).href;",
  },
  plugins: [snapshotSafe],
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, entryPoints: [ENTRY], outfile: 'dist/mesh-init.cjs' }),
  build({ ...common, entryPoints: [SNAPSHOT_ENTRY], outfile: 'dist/mesh-init-snapshot.cjs' }),
  build({ ...common, entryPoints: [CNI_ENTRY], outfile: 'dist/mesh-init-cni.cjs' }),
]);
