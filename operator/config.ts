// The operator's settings from CCCP_* environment variables, with errors that
// name the variable. The proxy pod reads its own (proxy-pod/config.ts).
import { readFileSync } from 'node:fs';
import { ConfigError, envInteger, envList, envString } from '../common/env.ts';
import { type HttpLimits, httpLimitsFromEnv } from '../common/http-limits.ts';
import { logSummaryMsFromEnv } from '../common/log-summary.ts';
import { MAX_LIFETIME_SECONDS } from './control-api-contract.ts';
import { PortAllocator, type PortRange } from './port-allocator.ts';
import type { SessionLimitDefaults } from './session-store.ts';

export { ConfigError };

export interface OperatorConfig {
  controlPort: number;
  /** Where the Control API listens; undefined means all interfaces. */
  controlBindHost: string | undefined;
  devicePort: number;
  portRange: PortRange;
  publicHost: string;
  /** Ports per proxy pod, each pod its own slice of the range in ordinal order; 0: every pod the whole range (CCCP_PORT_SLICE_SIZE). */
  portSliceSize: number;
  /** Where the proxy listens (device port and session ports); undefined means all interfaces. */
  bindHost: string | undefined;
  /** Bearer tokens for the Control API; empty means no authentication. */
  controlTokens: string[];
  /** CCCP_CONTROL_TOKENS_FILE: where the tokens came from, re-read while running (rotation). */
  controlTokensFile: string | undefined;
  /** How long /on and /off wait for the reconciler before answering 500. */
  requestTimeoutMs: number;
  /** How long Ended and Failed sessions stay visible. */
  endedRetentionMs: number;
  /** How often the reconciler compares live counters with status (bounds /status staleness). */
  pollIntervalMs: number;
  /** Connection cap and timeouts of the Control API's HTTP server. */
  httpLimits: HttpLimits;
  /** Interval of the rate-limited request-log summaries. */
  logSummaryMs: number;
  /** Lifetime limits for sessions that ask for none; absent means none. */
  limitDefaults: SessionLimitDefaults;
}

const DEFAULT_RANGE = '20000-20099';

export function parsePortRange(text: string, name = 'CCCP_PORT_RANGE'): PortRange {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  if (!match) throw new ConfigError(`${name} must look like 20000-20099 (inclusive), not "${text}"`);
  const min = Number(match[1]);
  const max = Number(match[2]);
  if (min < 1 || max > 65_535) throw new ConfigError(`${name} must lie within 1-65535, not "${text}"`);
  if (min > max) throw new ConfigError(`${name} is reversed: "${text}" (write the lower port first)`);
  return { min, max };
}

/** Comma-separated tokens (the CCCP_CONTROL_TOKENS format), checked; `source` names the variable or file in errors. */
export function parseControlTokens(text: string, source: string): string[] {
  const tokens = envList({ tokens: text }, 'tokens');
  for (const token of tokens) {
    if (!/^[\x21-\x7e]+$/.test(token)) throw new ConfigError(`${source}: tokens must be printable ASCII without spaces`);
  }
  return tokens;
}

/**
 * The tokens in CCCP_CONTROL_TOKENS_FILE (a mounted Secret). A file that names
 * no token is an error: with a file configured, authentication was meant, and
 * an empty read must never turn it off.
 */
export function readControlTokensFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`CCCP_CONTROL_TOKENS_FILE ${file} cannot be read: ${(err as Error).message}`);
  }
  const tokens = parseControlTokens(text, `CCCP_CONTROL_TOKENS_FILE ${file}`);
  if (tokens.length === 0) throw new ConfigError(`CCCP_CONTROL_TOKENS_FILE ${file} holds no token`);
  return tokens;
}

export function operatorConfigFromEnv(env: NodeJS.ProcessEnv): OperatorConfig {
  const controlTokensFile = envString(env, 'CCCP_CONTROL_TOKENS_FILE');
  if (controlTokensFile && envString(env, 'CCCP_CONTROL_TOKENS')) {
    throw new ConfigError('set CCCP_CONTROL_TOKENS or CCCP_CONTROL_TOKENS_FILE, not both');
  }
  const controlTokens = controlTokensFile
    ? readControlTokensFile(controlTokensFile)
    : parseControlTokens(env.CCCP_CONTROL_TOKENS ?? '', 'CCCP_CONTROL_TOKENS');
  const config: OperatorConfig = {
    controlPort: envInteger(env, 'CCCP_CONTROL_PORT', 8080, 0, 65_535),
    controlBindHost: envString(env, 'CCCP_CONTROL_BIND_HOST'),
    devicePort: envInteger(env, 'CCCP_DEVICE_PORT', 9000, 0, 65_535),
    portRange: parsePortRange(envString(env, 'CCCP_PORT_RANGE') ?? DEFAULT_RANGE),
    publicHost: envString(env, 'CCCP_PUBLIC_HOST') ?? 'localhost',
    bindHost: envString(env, 'CCCP_BIND_HOST'),
    controlTokens,
    controlTokensFile,
    requestTimeoutMs: envInteger(env, 'CCCP_REQUEST_TIMEOUT_S', 10, 1, 300) * 1000,
    endedRetentionMs: envInteger(env, 'CCCP_ENDED_RETENTION_S', 300, 0, 30 * 86_400) * 1000,
    pollIntervalMs: envInteger(env, 'CCCP_STATUS_POLL_MS', 300, 50, 1000),
    portSliceSize: envInteger(env, 'CCCP_PORT_SLICE_SIZE', 0, 0, 65_535),
    httpLimits: httpLimitsFromEnv(env),
    logSummaryMs: logSummaryMsFromEnv(env),
    limitDefaults: {},
  };
  // 0 (the default) means no limit; the range is the one /on accepts.
  const maxLifetime = envInteger(env, 'CCCP_DEFAULT_MAX_LIFETIME_S', 0, 0, MAX_LIFETIME_SECONDS);
  const idleTimeout = envInteger(env, 'CCCP_DEFAULT_IDLE_TIMEOUT_S', 0, 0, MAX_LIFETIME_SECONDS);
  if (maxLifetime > 0) config.limitDefaults.maxLifetimeSeconds = maxLifetime;
  if (idleTimeout > 0) config.limitDefaults.idleTimeoutSeconds = idleTimeout;
  const { min, max } = config.portRange;
  if (config.devicePort >= min && config.devicePort <= max) {
    throw new ConfigError(`CCCP_DEVICE_PORT ${config.devicePort} lies inside CCCP_PORT_RANGE ${min}-${max}`);
  }
  if (config.controlPort >= min && config.controlPort <= max) {
    throw new ConfigError(`CCCP_CONTROL_PORT ${config.controlPort} lies inside CCCP_PORT_RANGE ${min}-${max}`);
  }
  return config;
}

/** What both entry points give the reconciler from the configuration: the timings. */
export function reconcilerSettings(config: OperatorConfig) {
  return {
    pollIntervalMs: config.pollIntervalMs,
    endedRetentionMs: config.endedRetentionMs,
    limitDefaults: config.limitDefaults,
  };
}

/**
 * Each proxy pod with its own port table: the pod of ordinal i owns the
 * i-th slice of the range (CCCP_PORT_SLICE_SIZE ports), or the whole range
 * when the slice size is 0 (each pod on a node of its own, hostNetwork).
 */
export function proxyPodTargets<P extends { name: string }>(
  config: OperatorConfig,
  pods: P[],
): Array<P & { allocator: PortAllocator; publicHost: string }> {
  const { min, max } = config.portRange;
  const slice = config.portSliceSize;
  if (slice > 0 && pods.length * slice > max - min + 1) {
    throw new ConfigError(
      `CCCP_PORT_RANGE ${min}-${max} holds ${max - min + 1} ports, fewer than ${pods.length} proxy pods × CCCP_PORT_SLICE_SIZE ${slice}`,
    );
  }
  return pods.map((pod, ordinal) => ({
    ...pod,
    allocator: new PortAllocator(slice > 0 ? { min: min + ordinal * slice, max: min + (ordinal + 1) * slice - 1 } : { min, max }),
    publicHost: config.publicHost,
  }));
}
