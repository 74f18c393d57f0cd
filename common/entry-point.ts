// Entry points start only when run, not when imported, so tests and other
// entry points can import what they export.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Whether the module at moduleUrl (its import.meta.url) is the script node was asked to run. */
export function isEntryPoint(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && fileURLToPath(moduleUrl) === resolve(script);
}
