// A hostile HTTP peer, run as its own process so that its sockets and event
// loop do not disturb the measurements of the process that started it:
// `idle` connections that send nothing and `trickle` connections that send a
// request head one byte per second, each reopened when the server closes it,
// for `seconds`. Prints one JSON line with what it saw, then exits.
//
//   node --import tsx test/helpers/hostile-http.ts '{"port":8080,"idle":1000,"trickle":500,"seconds":5}'
import net from 'node:net';

export interface HostileHttpPlan {
  port: number;
  host?: string;
  /** The address the attack comes from (any of 127.0.0.0/8 on loopback). */
  localAddress?: string;
  idle: number;
  trickle: number;
  seconds: number;
  /** Open a closed connection again (a persistent attacker); default true. */
  reopen?: boolean;
}

export interface HostileHttpReport {
  opened: number;
  /** Connections the server closed (reset, FIN or refused) while the attack ran. */
  closedByServer: number;
  /** Connections still open when the attack ended. */
  stillOpen: number;
  /** The longest any connection stayed open, in ms. */
  longestHeldMs: number;
}

async function attack(plan: HostileHttpPlan): Promise<HostileHttpReport> {
  const host = plan.host ?? '127.0.0.1';
  const until = Date.now() + plan.seconds * 1000;
  const report: HostileHttpReport = { opened: 0, closedByServer: 0, stillOpen: 0, longestHeldMs: 0 };
  const open = new Map<net.Socket, { openedAt: number; sent: number }>();
  const head = Buffer.from(`GET /status?serial=TRICKLE HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(4000)}\r\n\r\n`);
  let stopping = false;

  const start = (trickle: boolean) => {
    if (stopping || Date.now() >= until) return;
    const socket = net.connect({ port: plan.port, host, localAddress: plan.localAddress });
    const openedAt = Date.now();
    report.opened++;
    socket.on('error', () => {});
    socket.on('connect', () => open.set(socket, { openedAt, sent: trickle ? 0 : -1 }));
    socket.on('close', () => {
      const entry = open.get(socket);
      open.delete(socket);
      if (entry) report.longestHeldMs = Math.max(report.longestHeldMs, Date.now() - entry.openedAt);
      if (stopping) return;
      report.closedByServer++;
      // A short pause, so a refusing server is not hammered in a tight loop.
      if (plan.reopen ?? true) setTimeout(() => start(trickle), 20);
    });
  };

  for (let i = 0; i < plan.idle; i++) start(false);
  for (let i = 0; i < plan.trickle; i++) start(true);
  const drip = setInterval(() => {
    for (const [socket, entry] of open) {
      if (entry.sent < 0 || entry.sent >= head.length) continue;
      socket.write(head.subarray(entry.sent, entry.sent + 1));
      entry.sent++;
    }
  }, 1000);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
  stopping = true;
  clearInterval(drip);
  report.stillOpen = open.size;
  for (const [socket, entry] of open) {
    report.longestHeldMs = Math.max(report.longestHeldMs, Date.now() - entry.openedAt);
    socket.destroy();
  }
  return report;
}

if (process.argv[2]) {
  const report = await attack(JSON.parse(process.argv[2]) as HostileHttpPlan);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}
