import { runProcess } from './process.js';

// The process entry of the plain bundle (the npm bin); the image starts from a
// snapshot whose entry is cli/snapshot.ts instead. Only cli/process.ts touches
// `process`.
void runProcess(process.argv.slice(2));
