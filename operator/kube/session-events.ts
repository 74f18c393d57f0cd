// Which proxy events become Kubernetes Events on a ProxySession, and how they read.
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import type { RecordedEvent } from './event-recorder.ts';

export function proxyEventToKubeEvent(event: ProxyEvent): RecordedEvent | undefined {
  const from = event.address ? ` from ${event.address}` : '';
  switch (event.type) {
    case 'device-connected':
      return { type: 'Normal', reason: 'DeviceConnected', message: `Device connected${from}` };
    case 'device-disconnected':
      return {
        type: 'Normal',
        reason: 'DeviceDisconnected',
        message: `Device disconnected${from}${event.reason ? `: ${event.reason}` : ''}`,
      };
    case 'client-connected':
      return { type: 'Normal', reason: 'ClientConnected', message: `Client connected${from}` };
    case 'client-disconnected':
      return {
        type: 'Normal',
        reason: 'ClientDisconnected',
        message: `Client disconnected${from}${event.reason ? `: ${event.reason}` : ''}`,
      };
    case 'client-refused':
      return { type: 'Warning', reason: 'ClientRefused', message: `Client${from} refused: not in the whitelist` };
    case 'session-ended':
      return { type: 'Normal', reason: 'SessionEnded', message: `Session ended: ${event.reason ?? 'unknown reason'}` };
    default:
      return undefined;
  }
}
