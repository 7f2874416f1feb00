"""A minimal runtime that behaves like the original asya_runtime.py on the wire: one request
frame per connection, one response, then the connection is closed. Echoes payloads."""
import json
import os
import socket
import struct


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def main():
    d = os.environ.get("ASYA_SOCKET_DIR", "/var/run/asya")
    path = os.path.join(d, "asya-runtime.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(5)
    with open(os.path.join(d, "runtime-ready"), "w") as f:
        f.write("ready")
    while True:
        conn, _ = srv.accept()
        with conn:
            head = read_exact(conn, 4)
            if head is None:
                continue
            body = read_exact(conn, struct.unpack(">I", head)[0])
            if body is None:
                continue
            env = json.loads(body)
            route = dict(env["route"])
            route["current"] = route.get("current", 0) + 1
            out = [{"payload": {"oneshot": env["payload"], "pid": os.getpid()}, "route": route}]
            data = json.dumps(out).encode()
            conn.sendall(struct.pack(">I", len(data)) + data)


if __name__ == "__main__":
    main()
