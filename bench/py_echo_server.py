"""Baseline for the Python runtime: a minimal stdlib server with the runtime protocol's framing.

Per frame: json.loads, call a no-op handler, json.dumps a response of the runtime's shape
([{payload, route(current+1), headers}]), one sendall. Serves each connection until EOF, so it
works for a new connection per message and for a kept connection.
usage: python3 py_echo_server.py SOCK
"""
import json
import os
import socket
import struct
import sys


def handler(payload):
    return payload


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main(path):
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(512)
    while True:
        conn, _ = server.accept()
        with conn:
            while True:
                head = read_exact(conn, 4)
                if head is None:
                    break
                body = read_exact(conn, struct.unpack(">I", head)[0])
                if body is None:
                    break
                env = json.loads(body)
                route = dict(env["route"])
                route["current"] = route.get("current", 0) + 1
                out = [{"payload": handler(env["payload"]), "route": route,
                        "headers": env.get("headers")}]
                data = json.dumps(out).encode()
                conn.sendall(struct.pack(">I", len(data)) + data)


if __name__ == "__main__":
    main(sys.argv[1])
