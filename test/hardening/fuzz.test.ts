// Property-based fuzzing of the parsers facing hostile input. `npm test` runs
// a short pass; `npm run fuzz` runs 100,000 cases per property.
import fc from 'fast-check';
import { test } from 'uvu';
import { proxyHeaderProperties, queryProperties, registrationProperties, whitelistProperties } from '../fuzz/properties.ts';

const numRuns = Number(process.env.CCCP_FUZZ_RUNS ?? 2000);
const seed = process.env.CCCP_FUZZ_SEED ? Number(process.env.CCCP_FUZZ_SEED) : undefined;

for (const [group, properties] of Object.entries({
  registration: registrationProperties,
  whitelist: whitelistProperties,
  query: queryProperties,
  'proxy header': proxyHeaderProperties,
})) {
  for (const [name, property] of Object.entries(properties)) {
    test(`${group}: ${name} (${numRuns} cases)`, () => {
      fc.assert(property as fc.IRawProperty<unknown[]>, { numRuns, ...(seed !== undefined ? { seed } : {}) });
    });
  }
}

test.run();
