import { execa } from 'execa';

// The kernel suite runs the real bundle, so build it once, fresh, before any file.
export default async function setup(): Promise<void> {
  await execa(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
