// Control-plane storms against the standalone mode, run as a process of their
// own so the benchmark's event loop (which times the live pair) stays quiet:
//   on        COUNT concurrent /on calls for distinct serials PREFIX-0..N-1
//   off       the same serials switched off, 100 at a time
//   register  COUNT device connections registering one serial at once
//             (each replaces the one before), closed after a second
// Prints one JSON line: how many calls answered which status, and the time.
//
//   node --import tsx bench/storm.ts '{"kind":"on","url":"http://127.0.0.1:8080","count":3000,"prefix":"S"}'
import net from 'node:net';

interface StormPlan {
  kind: 'on' | 'off' | 'register';
  url?: string;
  devicePort?: number;
  count: number;
  prefix: string;
}

async function call(url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

function register(port: number, serial: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => resolve(0));
    socket.on('connect', () => {
      socket.write(`${serial}\r`);
      setTimeout(() => {
        socket.destroy();
        resolve(1);
      }, 1000);
    });
  });
}

const plan = JSON.parse(process.argv[2]!) as StormPlan;
const started = performance.now();
let results: number[] = [];
if (plan.kind === 'on') {
  results = await Promise.all(Array.from({ length: plan.count }, (_, i) => call(`${plan.url}/on?serial=${plan.prefix}-${i}`)));
} else if (plan.kind === 'off') {
  for (let i = 0; i < plan.count; i += 100) {
    results.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, plan.count - i) }, (_, j) => call(`${plan.url}/off?serial=${plan.prefix}-${i + j}`)),
      )),
    );
  }
} else {
  results = await Promise.all(Array.from({ length: plan.count }, () => register(plan.devicePort!, plan.prefix)));
}
const statuses: Record<string, number> = {};
for (const status of results) statuses[status] = (statuses[status] ?? 0) + 1;
process.stdout.write(`${JSON.stringify({ statuses, ms: Math.round(performance.now() - started) })}\n`);
process.exit(0);
