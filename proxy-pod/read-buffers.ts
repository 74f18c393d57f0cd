// Reads of the proxy's accepted sockets into buffers it reuses.
//
// Node's own read path gives every read a fresh 64 KiB ArrayBuffer. A bulk
// transfer makes ~16,000 of them per GiB; V8 counts them as external memory
// and answers with a mark-compact every few tens of MB, which cost the proxy
// process more CPU than moving the bytes (1.1–1.4 CPU-s per GiB forwarded,
// HAProxy 0.4; with the reads below 0.4–0.5: the README's Benchmarks).
//
// Node's `onread` option reads into buffers the caller hands it instead, but
// Node offers it only on sockets it makes itself, not on those a server
// accepts. `adoptReads` therefore moves an accepted socket's handle, before
// its first byte is read, into a socket made with that option. Where this
// Node has no such handle the socket is left as it was.
//
// Which buffer a read goes into:
// - One buffer shared by every socket. Its bytes are always copied before
//   anyone sees them, so no pending write can point into it.
// - Once a read fills OWN_FROM bytes or more and a sink takes the socket's
//   bytes, a buffer of the socket's own, from a small pool. The sink gets its
//   bytes without a copy and says whether it kept them (a write that could
//   not finish at once). A kept buffer is left to that write and the next
//   read goes into another; a smaller read sends the socket back to the
//   shared buffer and its own back to the pool.
// Without a sink (before a session takes the socket, or after it let it go),
// the bytes are copied into the socket's readable side, so 'data', pause(),
// unshift() and 'end' work as on any socket: the registration and PROXY
// header readers need no change.
//
// Node calls the buffer function after every read (lib/internal/
// stream_base_commons.js); test/proxy-pod/read-buffers.test.ts checks that
// this Node still does, since a buffer kept by a write must never be read
// into again.
import net from 'node:net';

/** Takes a socket's bytes; true when it still holds `chunk` (a write that did not finish). */
export type ReadSink = (chunk: Buffer, socket: net.Socket) => boolean;

const READ_SIZE = 64 * 1024;
/** A read this large or larger is a bulk transfer: the next read goes into the socket's own buffer. */
const OWN_FROM = 16 * 1024;
/** Own buffers kept for reuse when no socket needs them. */
const POOL_SIZE = 16;

const shared = Buffer.allocUnsafeSlow(READ_SIZE);
const pool: Buffer[] = [];
/** What the buffer function hands Node next: set by the read callback that runs just before it. */
let next: Buffer = shared;

function nextBuffer(): Buffer {
  const buffer = next;
  next = shared;
  return buffer;
}

function takeOwn(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
}

function releaseOwn(buffer: Buffer): void {
  if (pool.length < POOL_SIZE) pool.push(buffer);
}

function copyOf(buffer: Uint8Array, length: number): Buffer {
  const copy = Buffer.allocUnsafe(length);
  copy.set(buffer.subarray(0, length));
  return copy;
}

/** The sink of an adopted socket: present (maybe undefined) on every adopted socket, and only on those. */
const SINK = Symbol('readSink');
/** An adopted socket's own buffer, while it is in a bulk transfer; never one a write still holds. */
const OWN = Symbol('ownBuffer');
type AdoptedSocket = net.Socket & { [SINK]?: ReadSink | undefined; [OWN]?: Buffer | undefined };

/** Chooses the buffer of the socket's next read. A socket that closes with its own leaves it to the garbage collector. */
function useOwn(socket: AdoptedSocket, bulk: boolean): void {
  const own = socket[OWN];
  if (bulk) {
    next = own ?? takeOwn();
    socket[OWN] = next;
    return;
  }
  if (own) releaseOwn(own);
  socket[OWN] = undefined;
}

/** Node's onread callback for `socket`: `buffer` holds `length` new bytes. */
function onRead(socket: AdoptedSocket, length: number, buffer: Uint8Array): boolean {
  const sink = socket[SINK];
  if (!sink) {
    useOwn(socket, false);
    // Backpressure as on any socket: reading resumes when the readable side is read.
    return socket.push(copyOf(buffer, length));
  }
  if (buffer !== socket[OWN]) sink(copyOf(buffer, length), socket);
  else if (sink((buffer as Buffer).subarray(0, length), socket)) socket[OWN] = undefined;
  // Chosen only once the sink is done, so nothing it does can take this socket's next buffer.
  useOwn(socket, length >= OWN_FROM);
  return true;
}

/** `_handle` is Node's own field; it is read only here, once per accepted socket. */
type WithHandle = net.Socket & { _handle?: unknown };

/** A socket that reads into the buffers above. */
function readingSocket(options: net.SocketConstructorOpts & { handle?: unknown }): AdoptedSocket {
  const socket: AdoptedSocket = new net.Socket({
    ...options,
    onread: { buffer: nextBuffer, callback: (length: number, buffer: Uint8Array) => onRead(socket, length, buffer) },
  } as net.SocketConstructorOpts);
  socket[SINK] = undefined;
  socket[OWN] = undefined;
  return socket;
}

/**
 * Moves a socket a server just accepted (nothing read from it yet) into one
 * that reads into the buffers above, and returns that one; returns `socket`
 * itself when it cannot be moved. Call it first thing in the 'connection'
 * listener, before anything listens on the socket.
 */
export function adoptReads(socket: net.Socket): net.Socket {
  const accepted = socket as WithHandle;
  const handle = accepted._handle;
  if (handle === null || typeof handle !== 'object' || !('useUserBuffer' in handle) || socket.readableLength > 0) return socket;
  accepted._handle = null;
  // Without a handle, destroy() only settles the server's count of its connections.
  socket.destroy();
  return readingSocket({ handle, allowHalfOpen: socket.allowHalfOpen, readable: true, writable: true });
}

/** `net.connect` for a socket that reads into the buffers above (Node's own option, no handle moved). */
export function connectReading(options: net.TcpNetConnectOpts): net.Socket {
  // As net.connect does: the options go to the socket (allowHalfOpen, noDelay) and to connect().
  return readingSocket(options).connect(options);
}

/** Whether `socket` reads into the buffers above. */
export function readsIntoOwnBuffers(socket: net.Socket): boolean {
  return SINK in socket;
}

/**
 * Has `sink` take the socket's bytes from its next read on, instead of its
 * readable side; `undefined` gives them back to the readable side. Bytes
 * already waiting there stay there (`takeReads` hands them over). No effect
 * on a socket that was not adopted.
 */
export function setReadSink(socket: net.Socket, sink: ReadSink | undefined): void {
  if (SINK in socket) (socket as AdoptedSocket)[SINK] = sink;
}

/**
 * Has `sink` take the socket's bytes from its next read on, and returns the
 * bytes that already waited in its readable side (a PROXY header's rest,
 * bytes read while a device was routed), or null: the caller passes them on
 * before anything the sink gets. A socket that was not adopted goes on
 * emitting 'data' after them.
 */
export function takeReads(socket: net.Socket, sink: ReadSink): Buffer | null {
  const waiting = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
  setReadSink(socket, sink);
  return waiting;
}
