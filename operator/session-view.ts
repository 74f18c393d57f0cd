// A stored session as the Control API shows it (/status, /sessions): the
// seed's three fields first, then what explains the session. Pure.
import type { StatusReply } from './control-api-contract.ts';
import type { ProxySession } from './session-store.ts';

function stateOf(session: ProxySession): StatusReply['state'] {
  if (session.status.phase === 'Ended') return 'ended';
  if (session.status.phase === 'Failed') return 'failed';
  if (session.deleting) return 'stopping';
  return session.status.phase === 'Active' ? 'active' : 'pending';
}

export function statusReply(session: ProxySession): StatusReply {
  const { spec, status } = session;
  const terminal = status.phase === 'Ended' || status.phase === 'Failed';
  const reply: StatusReply = {
    device_connected: status.deviceConnected ?? false,
    client_connected: status.clientConnected ?? false,
    transferred: status.transferredBytes ?? 0,
    serial: session.serial,
    state: stateOf(session),
    created_at: session.creationTimestamp,
    persistent: spec.persistent,
    ip_whitelist: [...spec.ipWhitelist],
    device: {
      connected: status.deviceConnected ?? false,
      bytes_sent: status.bytesFromDevice ?? 0,
      bytes_dropped: status.droppedFromDevice ?? 0,
    },
    client: {
      connected: status.clientConnected ?? false,
      bytes_sent: status.bytesFromClient ?? 0,
      bytes_dropped: status.droppedFromClient ?? 0,
    },
    clients_refused: status.clientsRefused ?? 0,
  };
  if (status.host !== undefined && !terminal) reply.host = status.host;
  if (status.port !== undefined && !terminal) reply.port = status.port;
  if (spec.timeoutSeconds !== undefined) reply.timeout = spec.timeoutSeconds;
  if (status.expiresAt !== undefined) reply.expires_at = status.expiresAt;
  const idle = spec.idleTimeoutSeconds ?? status.idleTimeoutSeconds;
  if (idle !== undefined) reply.idle_timeout = idle;
  if (spec.maxLifetimeSeconds !== undefined) reply.max_lifetime = spec.maxLifetimeSeconds;
  if (status.deviceAddress !== undefined) reply.device.address = status.deviceAddress;
  if (status.deviceConnectedSince !== undefined) reply.device.connected_since = status.deviceConnectedSince;
  if (status.deviceLastActivity !== undefined) reply.device.last_activity = status.deviceLastActivity;
  if (status.clientAddress !== undefined) reply.client.address = status.clientAddress;
  if (status.clientConnectedSince !== undefined) reply.client.connected_since = status.clientConnectedSince;
  if (status.clientLastActivity !== undefined) reply.client.last_activity = status.clientLastActivity;
  if (status.endedReason !== undefined) reply.ended_reason = status.endedReason;
  if (status.endedAt !== undefined) reply.ended_at = status.endedAt;
  return reply;
}
