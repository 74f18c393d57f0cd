// The proxy pod's settings from CCCP_* environment variables.

import { adminTokenFromEnv, ConfigError, envInteger, envList, envString } from '../common/env.ts';
import { httpLimitsFromEnv } from '../common/http-limits.ts';
import { logSummaryMsFromEnv } from '../common/log-summary.ts';
import { addressEntryError } from './address-matcher.ts';
import type { AdminListen } from './admin-api.ts';
import type { PeerSettings } from './peer-link.ts';
import { MAX_REPLICAS, peerAddressPatternError } from './peer-protocol.ts';
import { PROXY_PROTOCOL_MODES, type ProxyProtocolMode } from './proxy-header.ts';
import type { ProxyPodOptions } from './proxy-pod.ts';
import type { ProxyProtocolSettings } from './proxy-protocol.ts';

export interface ProxyConfig extends ProxyPodOptions {
  /** Port of /healthz, /readyz and /metrics without a token; 0 turns it off. */
  healthPort: number;
}

export function proxyOptionsFromEnv(env: NodeJS.ProcessEnv): ProxyConfig {
  const deviceAllowlist = envList(env, 'CCCP_DEVICE_ALLOWLIST');
  for (const entry of deviceAllowlist) {
    const problem = addressEntryError(entry);
    if (problem) throw new ConfigError(`CCCP_DEVICE_ALLOWLIST: ${problem}`);
  }
  const publicHost = envString(env, 'CCCP_PUBLIC_HOST');
  const peers = peerSettingsFromEnv(env);
  return {
    devicePort: envInteger(env, 'CCCP_DEVICE_PORT', 9000, 0, 65_535),
    bindHost: envString(env, 'CCCP_BIND_HOST'),
    admin: adminListenFromEnv(env),
    registrationTimeoutMs: envInteger(env, 'CCCP_REGISTRATION_TIMEOUT_S', 10, 1, 3600) * 1000,
    pendingTimeoutMs: envInteger(env, 'CCCP_PENDING_TIMEOUT_S', 300, 1, 86_400) * 1000,
    maxPending: envInteger(env, 'CCCP_MAX_PENDING', 10_000, 1, 1_000_000),
    maxUnregistered: envInteger(env, 'CCCP_MAX_UNREGISTERED', 20_000, 1, 1_000_000),
    lingerMs: envInteger(env, 'CCCP_LINGER_S', 30, 1, 3600) * 1000,
    keepaliveIdleMs: envInteger(env, 'CCCP_KEEPALIVE_IDLE_S', 60, 1, 7200) * 1000,
    sendTimeoutMs: envInteger(env, 'CCCP_SEND_TIMEOUT_S', 60, 0, 86_400) * 1000,
    deviceAllowlist,
    healthPort: envInteger(env, 'CCCP_PROXY_HEALTH_PORT', 9090, 0, 65_535),
    logSummaryMs: logSummaryMsFromEnv(env),
    httpLimits: httpLimitsFromEnv(env),
    ...(publicHost ? { publicHost } : {}),
    ...(peers ? { peers } : {}),
    proxyProtocol: proxyProtocolFromEnv(env),
  };
}

/** Which PROXY protocol headers the device port and the session ports expect, and from which senders. */
function proxyProtocolFromEnv(env: NodeJS.ProcessEnv): ProxyProtocolSettings {
  const trustedSources = envList(env, 'CCCP_PROXY_PROTOCOL_TRUSTED');
  for (const entry of trustedSources) {
    const problem = addressEntryError(entry);
    if (problem) throw new ConfigError(`CCCP_PROXY_PROTOCOL_TRUSTED: ${problem}`);
  }
  return {
    device: proxyProtocolMode(env, 'CCCP_PROXY_PROTOCOL_DEVICE'),
    sessions: proxyProtocolMode(env, 'CCCP_PROXY_PROTOCOL_SESSIONS'),
    trustedSources,
    headerTimeoutMs: envInteger(env, 'CCCP_PROXY_PROTOCOL_TIMEOUT_S', 5, 1, 60) * 1000,
  };
}

function proxyProtocolMode(env: NodeJS.ProcessEnv, name: string): ProxyProtocolMode {
  const raw = envString(env, name) ?? 'off';
  const mode = PROXY_PROTOCOL_MODES.find((m) => m === raw.toLowerCase());
  if (!mode) throw new ConfigError(`${name} must be one of ${PROXY_PROTOCOL_MODES.join(', ')}, not "${raw}"`);
  return mode;
}

/**
 * The other proxy pods of the release (see peer-link.ts): none when
 * CCCP_PEER_PORT is 0 or absent. CCCP_PROXY_REPLICAS is only a starting
 * count (standalone runs, tests): in a cluster the operator tells each pod
 * the release's count (PUT /v1/peers), so the pod template does not change
 * with it and scaling up restarts no pod.
 */
export function peerSettingsFromEnv(env: NodeJS.ProcessEnv): PeerSettings | undefined {
  const port = envInteger(env, 'CCCP_PEER_PORT', 0, 0, 65_535);
  if (port === 0) return undefined;
  const replicas =
    envString(env, 'CCCP_PROXY_REPLICAS') === undefined ? undefined : envInteger(env, 'CCCP_PROXY_REPLICAS', 1, 1, MAX_REPLICAS);
  const ordinal = podOrdinal(env, replicas ?? MAX_REPLICAS);
  const addressPattern = envString(env, 'CCCP_PEER_ADDRESS');
  if (!addressPattern) throw new ConfigError('CCCP_PEER_ADDRESS is required with CCCP_PEER_PORT');
  const problem = peerAddressPatternError(addressPattern);
  if (problem) throw new ConfigError(`CCCP_PEER_ADDRESS ${problem}, not "${addressPattern}"`);
  let token: string;
  try {
    token = adminTokenFromEnv(env);
  } catch {
    throw new ConfigError('the peer port needs CCCP_ADMIN_TOKEN or CCCP_ADMIN_TOKEN_FILE with at least 16 characters');
  }
  return {
    port,
    bindHost: envString(env, 'CCCP_PEER_BIND_HOST') ?? envString(env, 'CCCP_BIND_HOST'),
    ordinal,
    ...(replicas !== undefined ? { replicas } : {}),
    addressPattern,
    token,
  };
}

/** CCCP_POD_ORDINAL: the ordinal itself, or a StatefulSet pod name ending in it (cccp-proxy-2). */
function podOrdinal(env: NodeJS.ProcessEnv, replicas: number): number {
  const raw = envString(env, 'CCCP_POD_ORDINAL');
  const match = raw ? /^(?:.*-)?(\d{1,2})$/.exec(raw) : null;
  const ordinal = match ? Number(match[1]) : Number.NaN;
  if (!raw || !(ordinal >= 0 && ordinal < replicas)) {
    throw new ConfigError(
      `CCCP_POD_ORDINAL must be this pod's StatefulSet ordinal from 0 to ${replicas - 1} (or its pod name ending in it), not "${raw ?? ''}"`,
    );
  }
  return ordinal;
}

/** A Unix socket (CCCP_ADMIN_SOCKET), or TCP (CCCP_ADMIN_PORT) with a required token. */
function adminListenFromEnv(env: NodeJS.ProcessEnv): AdminListen {
  const socketPath = envString(env, 'CCCP_ADMIN_SOCKET');
  if (socketPath) return { socketPath };
  const port = envInteger(env, 'CCCP_ADMIN_PORT', 0, 0, 65_535);
  if (port === 0) throw new ConfigError('set CCCP_ADMIN_SOCKET, or CCCP_ADMIN_PORT with CCCP_ADMIN_TOKEN or CCCP_ADMIN_TOKEN_FILE');
  return { host: envString(env, 'CCCP_ADMIN_BIND_HOST') ?? '0.0.0.0', port, token: adminTokenFromEnv(env) };
}
