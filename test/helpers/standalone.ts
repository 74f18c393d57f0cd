import { type Answer, request } from './http.ts';
import { freePort, freePortRange, type PortRange, waitFor } from './net.ts';
import { type Started, startNodeProcess, withProxyYoungGeneration } from './processes.ts';

export type { Answer };

export interface RunningStandalone {
  url: string;
  devicePort: number;
  range: PortRange;
  process: Started;
  /** GET (or another method) on the Control API; `token` adds a bearer header. */
  call(path: string, options?: { method?: string; token?: string }): Promise<Answer>;
  stop(): Promise<number | null>;
}

export { freePortRange, type PortRange };

/** `range` (else `rangeSize` free ports) are the session ports; `entry` may name another checkout's standalone.ts (benchmarks compare two); `fdLimit` runs the standalone mode (and so its proxy process) under `ulimit -n`. */
export async function startStandalone(
  options: { rangeSize?: number; range?: PortRange; env?: Record<string, string>; fdLimit?: number; entry?: string } = {},
): Promise<RunningStandalone> {
  const range = options.range ?? (await freePortRange(options.rangeSize ?? 5));
  const devicePort = await freePort();
  const started = await startNodeProcess(
    options.entry ?? 'operator/standalone.ts',
    {
      CCCP_CONTROL_PORT: '0',
      CCCP_CONTROL_BIND_HOST: '127.0.0.1',
      CCCP_DEVICE_PORT: String(devicePort),
      CCCP_BIND_HOST: '127.0.0.1',
      CCCP_PUBLIC_HOST: '127.0.0.1',
      CCCP_PORT_RANGE: `${range.min}-${range.max}`,
      CCCP_LOG_LEVEL: process.env.CCCP_TEST_LOG_LEVEL ?? 'warn',
      // As `npm start` runs the standalone process (its proxy process inherits the size).
      NODE_OPTIONS: withProxyYoungGeneration(),
      ...options.env,
    },
    /Session ports /,
    20_000,
    options.fdLimit,
  );
  const url = /Control API listening on (http:\/\/\S+)/.exec(started.output())?.[1];
  if (!url) {
    await started.stop();
    throw new Error(`standalone printed no Control API URL:\n${started.output()}`);
  }
  const call = (path: string, { method, token }: { method?: string; token?: string } = {}) =>
    request(url + path, { ...(method ? { method } : {}), ...(token ? { token } : {}) });
  await waitFor(async () => (await call('/readyz')).status === 200, 10_000, 'the standalone mode to be ready').catch(
    async (error: Error) => {
      await started.stop();
      throw new Error(`${error.message}; output:\n${started.output().slice(-2000)}`);
    },
  );
  return { url, devicePort, range, process: started, call, stop: () => started.stop() };
}
