#!/usr/bin/env python3
"""A Modbus TCP slave that reaches the proxy the way a field device does.

It connects OUT to the proxy's device port, sends its serial and a carriage
return, then serves Modbus TCP (pymodbus's own request handler, datastore and
framer) on that same, already connected socket. pymodbus has no API for an
outbound server socket, so the handler is attached with asyncio's
connect_accepted_socket, which is what its TCP server does for each accepted
connection. Written against pymodbus 3.0 (Debian bookworm's python3-pymodbus).

    modbus_device.py HOST DEVICE_PORT SERIAL

Prints "registered" once the serial is sent; exits when the proxy closes the
connection.
"""
import asyncio
import logging
import socket
import sys

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSequentialDataBlock
from pymodbus.server.async_io import ModbusConnectedRequestHandler, ModbusTcpServer
from pymodbus.transaction import ModbusSocketFramer


async def serve(host: str, port: int, serial: str) -> None:
    # 100 holding registers, 0..99 at reference 1..100, all zero at start.
    # (The datablock is 1-based by default in pymodbus 3.0; address 0 pads it.)
    slave = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [0] * 101), zero_mode=False)
    context = ModbusServerContext(slaves=slave, single=True)
    # Never bound or started: it only carries the context, decoder and framer
    # that the per-connection handler reads from its owner.
    server = ModbusTcpServer(context, framer=ModbusSocketFramer, address=("127.0.0.1", 0), defer_start=True)

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(serial.encode("ascii") + b"\r")
    print("registered", flush=True)

    loop = asyncio.get_running_loop()
    transport, handler = await loop.connect_accepted_socket(lambda: ModbusConnectedRequestHandler(server), sock=sock)
    while handler.running or not transport.is_closing():
        await asyncio.sleep(0.05)
        if transport.is_closing():
            break


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    # The handler logs the end of the connection as an error; it is the normal way out here.
    logging.getLogger("pymodbus.server.async_io").setLevel(logging.CRITICAL)
    host, port, serial = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    asyncio.run(serve(host, port, serial))


if __name__ == "__main__":
    main()
