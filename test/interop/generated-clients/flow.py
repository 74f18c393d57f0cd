"""The whole Control API flow through the client that openapi-python-client
generates from the served /openapi.json: /on with a two-entry whitelist,
a device and a client joined over TCP, /status, /sessions, /off, and typed
errors. Type-checked with mypy --strict before it runs."""
import os
import socket
import time

from cccp_control_api_client import Client
from cccp_control_api_client.api.sessions import list_sessions, session_off, session_on, session_status
from cccp_control_api_client.models import Empty, Endpoint, Error, SessionPage, Status
from cccp_control_api_client.types import Unset

url = os.environ["CCCP_URL"]
device_port = int(os.environ["CCCP_DEVICE_PORT"])
serial = os.environ["CCCP_SERIAL"]
client = Client(base_url=url, raise_on_unexpected_status=True)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


endpoint = session_on.sync(client=client, serial=serial, persistent=True, ip_whitelist=["127.0.0.1", "10.0.0.0/8"])
assert isinstance(endpoint, Endpoint), endpoint

device = socket.create_connection(("127.0.0.1", device_port), timeout=5)
device.sendall(serial.encode() + b"\r")
scada = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
time.sleep(0.2)
device.sendall(b"ping")
assert receive(scada, 4) == b"ping"
scada.sendall(b"pong!")
assert receive(device, 5) == b"pong!"

status: Status | Error | None = None
for _ in range(50):
    status = session_status.sync(client=client, serial=serial)
    if isinstance(status, Status) and status.transferred == 9:
        break
    time.sleep(0.1)
assert isinstance(status, Status), status
assert status.device_connected and status.client_connected
assert status.ip_whitelist == ["127.0.0.1", "10.0.0.0/8"], status.ip_whitelist
assert status.device.bytes_sent == 4 and status.client.bytes_sent == 5
assert isinstance(status.persistent, bool) and status.persistent

page = list_sessions.sync(client=client, limit=100)
assert isinstance(page, SessionPage), page
assert serial in [s.serial for s in page.sessions]
assert isinstance(page.next_cursor, Unset)

refused = session_on.sync(client=client, serial=serial, timeout=0)
assert isinstance(refused, Error) and refused.code == "invalid_parameter" and refused.parameter == "timeout", refused

off = session_off.sync(client=client, serial=serial)
assert isinstance(off, Empty), off
gone = session_status.sync(client=client, serial=serial)
assert isinstance(gone, Error) and gone.code == "session_not_found", gone
device.close()
scada.close()
print("python flow ok")
