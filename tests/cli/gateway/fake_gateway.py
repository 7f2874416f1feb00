"""A stand-in for asya-gateway (our own component) for the `asya` client tests until the real one
serves requests: MCP over streamable HTTP (initialize / session id / tools/list with paging /
tools/call answered as SSE with progress notifications), the original gateway's asynchronous tool
answer (envelope_id + status_url), GET /envelopes/{id} and its SSE stream (replay, then live
updates until the final one), bearer tokens. Standard library only."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")

TOOLS = [
    {"name": "echo", "description": "Says it back",
     "inputSchema": {"type": "object",
                     "properties": {"text": {"type": "string", "description": "what to say"},
                                    "count": {"type": "integer", "default": 1}},
                     "required": ["text"]}},
    {"name": "pipeline", "description": "Doubles n through actors a, b, c",
     "inputSchema": {"type": "object",
                     "properties": {"n": {"type": "integer"}, "fail": {"type": "boolean"}},
                     "required": ["n"]}},
    {"name": "broken", "description": "Always a tool error", "inputSchema": {"type": "object"}},
    {"name": "slow", "description": "Never finishes", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Answers after 5 s", "inputSchema": {"type": "object"}},
    {"name": "outlives", "description": "Outlives the synchronous wait, then finishes",
     "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}},
]


class State:
    def __init__(self, token=None, page_size=2):
        self.token = token
        self.page_size = page_size
        self.sessions = {}  # id -> negotiated version
        self.calls = []  # (tool, arguments) of every tools/call
        self.envelopes = {}  # id -> {"env": dict, "history": [update]}
        self.cond = threading.Condition()

    def update(self, eid, **fields):
        with self.cond:
            e = self.envelopes[eid]
            e["env"].update({k: v for k, v in fields.items() if k not in ("actor", "actors")})
            u = {"id": eid, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
            u.update(fields)
            e["history"].append(u)
            self.cond.notify_all()

    def start_pipeline(self, arguments, finish=True):
        eid = str(uuid.uuid4())
        with self.cond:
            self.envelopes[eid] = {"env": {"id": eid, "status": "pending", "progress_percent": 0,
                                           "route": {"actors": ["a", "b", "c"], "current": 0},
                                           "payload": arguments},
                                   "history": []}

        def run():
            time.sleep(0.05)
            if not finish:
                self.update(eid, status="running", progress_percent=10, actors=["a", "b", "c"],
                            current_actor_idx=0, envelope_state="processing")
                return
            for i, actor in enumerate(["a", "b", "c"]):
                self.update(eid, status="running", progress_percent=round(i * 100 / 3 + 10, 1),
                            actors=["a", "b", "c"], current_actor_idx=i,
                            envelope_state="processing")
                time.sleep(0.05)
            if arguments.get("fail"):
                self.update(eid, status="failed", progress_percent=100,
                            error="boom in b", message="Envelope failed at actor 'b': boom in b")
            else:
                self.update(eid, status="succeeded", progress_percent=100,
                            result={"n": arguments["n"] * 2},
                            message="Envelope completed successfully")

        threading.Thread(target=run, daemon=True).start()
        return eid


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def authorized(self):
            if state.token is None:
                return True
            if self.headers.get("Authorization") == "Bearer " + state.token:
                return True
            self.send_plain(401, "unauthorized\n", {"WWW-Authenticate": 'Bearer realm="asya"'})
            return False

        def send_plain(self, code, text, headers=None, ctype="text/plain"):
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def send_json(self, code, obj, headers=None):
            self.send_plain(code, json.dumps(obj), headers, "application/json")

        # ---- MCP ----
        def do_POST(self):
            if self.path != "/mcp":
                return self.send_plain(404, "not found\n")
            if not self.authorized():
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                msg = json.loads(body)
            except ValueError:
                return self.send_json(200, {"jsonrpc": "2.0", "id": None,
                                            "error": {"code": -32700, "message": "parse error"}})
            method, mid = msg.get("method"), msg.get("id")
            if method == "initialize":
                asked = msg.get("params", {}).get("protocolVersion")
                version = asked if asked in KNOWN_VERSIONS else "2025-06-18"
                sid = "mcp-session-" + str(uuid.uuid4())
                state.sessions[sid] = version
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": {
                    "protocolVersion": version, "capabilities": {"tools": {}},
                    "serverInfo": {"name": "asya-gateway", "version": "0.1.0"}}},
                    {"Mcp-Session-Id": sid})
            sid = self.headers.get("Mcp-Session-Id")
            if sid not in state.sessions:
                return self.send_plain(400, "bad or missing session id\n")
            if self.headers.get("MCP-Protocol-Version") != state.sessions[sid]:
                return self.send_plain(400, "MCP-Protocol-Version does not match the session\n")
            if mid is None:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if method == "tools/list":
                start = int(msg.get("params", {}).get("cursor") or 0)
                page = TOOLS[start:start + state.page_size]
                result = {"tools": page}
                if start + state.page_size < len(TOOLS):
                    result["nextCursor"] = str(start + state.page_size)
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": result})
            if method == "tools/call":
                return self.tools_call(msg)
            return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "error": {
                "code": -32601, "message": "Method not found"}})

        def tools_call(self, msg):
            mid = msg["id"]
            params = msg.get("params", {})
            name, args = params.get("name"), params.get("arguments", {})
            state.calls.append((name, args))
            token = params.get("_meta", {}).get("progressToken")
            if name not in [t["name"] for t in TOOLS]:
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "error": {
                    "code": -32602, "message": "Tool %r not found" % name}})
            if name == "broken":
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": {
                    "isError": True, "content": [{"type": "text", "text": "it broke"}]}})
            if name == "hang":
                time.sleep(5)
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": {
                    "content": [{"type": "text", "text": "late"}]}})
            if name == "outlives":  # asya-gateway's answer when the bounded wait ran out
                eid = state.start_pipeline(args)
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": {
                    "isError": True,
                    "content": [{"type": "text", "text": "the pipeline is still running"}],
                    "structuredContent": {"envelope_id": eid, "status_url": "/envelopes/" + eid}}})
            if name in ("pipeline", "slow"):
                eid = state.start_pipeline(args, finish=(name == "pipeline"))
                ack = {"envelope_id": eid, "message": "Envelope created successfully",
                       "status_url": "/envelopes/" + eid, "stream_url": "/envelopes/%s/stream" % eid}
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": {
                    "content": [{"type": "text", "text": json.dumps(ack)}]}})
            # echo: a synchronous answer as SSE, with progress notifications first.
            result = {"content": [{"type": "text", "text": json.dumps({"echo": args["text"]})}],
                      "structuredContent": {"echo": args["text"], "count": args.get("count", 1)}}
            if "text/event-stream" not in self.headers.get("Accept", ""):
                return self.send_json(200, {"jsonrpc": "2.0", "id": mid, "result": result})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            events = []
            if token is not None:
                for p in (1, 2):
                    events.append({"jsonrpc": "2.0", "method": "notifications/progress",
                                   "params": {"progressToken": token, "progress": p, "total": 2,
                                              "message": "step %d" % p}})
            events.append({"jsonrpc": "2.0", "id": mid, "result": result})
            for e in events:
                self.wfile.write(("event: message\ndata: %s\n\n" % json.dumps(e)).encode())
                self.wfile.flush()
                time.sleep(0.02)
            self.close_connection = True

        # ---- REST ----
        def do_GET(self):
            if not self.path.startswith("/envelopes/"):
                return self.send_plain(404, "not found\n")
            if not self.authorized():
                return
            parts = self.path.split("/")
            eid = parts[2]
            with state.cond:
                known = eid in state.envelopes
                env = dict(state.envelopes[eid]["env"]) if known else None
            if not known:
                return self.send_plain(404, "Envelope not found\n")
            if len(parts) == 3:
                return self.send_json(200, env)
            if parts[3] != "stream":
                return self.send_plain(400, "bad path\n")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            sent = 0
            self.wfile.write(b": keepalive\n\n")
            while True:
                with state.cond:
                    history = state.envelopes[eid]["history"]
                    while sent >= len(history):
                        state.cond.wait(0.5)
                        if sent >= len(history):
                            break
                    new = history[sent:]
                try:
                    if not new:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        continue
                    for u in new:
                        self.wfile.write(("event: update\ndata: %s\n\n" % json.dumps(u)).encode())
                        sent += 1
                    self.wfile.flush()
                except OSError:
                    return
                if new[-1]["status"] in ("succeeded", "failed"):
                    self.close_connection = True
                    return

    return Handler


class FakeGateway:
    def __init__(self, token=None):
        self.state = State(token)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
