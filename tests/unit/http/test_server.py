"""HTTP(S) server for tests/unit/http/client_test.cc.

Usage: test_server.py PORT_FILE [--cert CERT --key KEY [--client-ca CA]]
Writes the port it listens on (127.0.0.1) to PORT_FILE, then serves until killed.

  ANY  /echo?status=N        -> N (default 200), JSON {method, path, headers, body}, X-Echo: yes
  GET  /sleep?ms=N           -> 200 after N ms
  GET  /flaky?key=K&fail=N&status=S[&retry_after=R]
                             -> the first N requests for K answer S (Retry-After: R), then 200 "ok"
  GET  /count?key=K          -> how many requests /flaky saw for K
  GET  /peer                 -> the client's source port (the same on a kept-alive connection)
  GET  /close                -> closes the connection without answering
  GET  /stream?lines=N[&status=S]
                             -> chunked body "line 0\\n" ... "line N-1" (no final newline), split
                                across chunks mid-line; with S != 200 a plain JSON body
"""
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body, headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if url.path == "/echo":
            doc = {"method": self.command, "path": self.path, "body": body,
                   "headers": {k.lower(): v for k, v in self.headers.items()}}
            self._send(int(q.get("status", "200")), json.dumps(doc),
                       [("Content-Type", "application/json"), ("X-Echo", "yes")])
        elif url.path == "/sleep":
            time.sleep(int(q.get("ms", "0")) / 1000.0)
            self._send(200, "slept")
        elif url.path == "/flaky":
            key = q.get("key", "")
            with LOCK:
                COUNTS[key] = COUNTS.get(key, 0) + 1
                n = COUNTS[key]
            if n <= int(q.get("fail", "0")):
                headers = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
                self._send(int(q.get("status", "503")), "failing", headers)
            else:
                self._send(200, "ok")
        elif url.path == "/count":
            with LOCK:
                self._send(200, str(COUNTS.get(q.get("key", ""), 0)))
        elif url.path == "/headers":  # n response headers
            self._send(200, "many", [("X-H%d" % i, "v") for i in range(int(q.get("n", "1")))])
        elif url.path == "/peer":
            self._send(200, str(self.client_address[1]))
        elif url.path == "/close":
            self.close_connection = True
            self.connection.shutdown(2)
        elif url.path == "/stream":
            status = int(q.get("status", "200"))
            if status != 200:
                self._send(status, json.dumps({"kind": "Status", "code": status}))
                return
            text = "\n".join("line %d" % i for i in range(int(q.get("lines", "3"))))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = text.encode()
            for i in range(0, len(data), 4):  # chunks that cut lines apart
                piece = data[i:i + 4]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, "not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # /close and stopped streams: expected
        pass


def main():
    port_file = sys.argv[1]
    args = sys.argv[2:]
    opts = dict(zip(args[::2], args[1::2]))
    server = Server(("127.0.0.1", 0), Handler)
    if "--cert" in opts:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts["--cert"], opts["--key"])
        if "--client-ca" in opts:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(opts["--client-ca"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
