import { runProcess } from './cli/process.js';

// The process entry of the plain bundle (the npm bin); the image starts from a
// snapshot whose entry is cli/snapshot.ts instead.
void runProcess(process.argv.slice(2));
