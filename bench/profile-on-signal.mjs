// Preloaded with NODE_OPTIONS=--import (node 20 refuses --cpu-prof there): the
// first SIGUSR2 starts V8's sampling profiler in this process, the second
// stops it and writes the profile to $CCCP_PROFILE_FILE (.cpuprofile JSON),
// so a benchmark profiles exactly the part it measures.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const file = process.env.CCCP_PROFILE_FILE;
if (file) {
  const session = new Session();
  session.connect();
  let running = false;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(file, JSON.stringify(result.profile));
      else console.error(`profile not written: ${err.message}`);
    });
  });
}
