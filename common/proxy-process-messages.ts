// What the proxy process tells a parent that started it with an IPC channel
// (the standalone mode runs the proxy pod as its child).
export interface ProxyProcessMessage {
  type: 'ready';
  devicePort: number;
  adminAddress: string;
}
