"""HTTP front end of the fake API server: routing, content negotiation, watches, admin hooks.

FakeApiServer(...).start() serves on 127.0.0.1:<port> from background threads; tests in this
repository use it in-process, other tests run `python3 -m fakeapi` (see __main__.py).
"""

import base64
import bisect
import json
import os
import re
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import discovery as D
from . import patch as P
from . import proto
from . import table as T
from .controllers import Controllers
from .resources import Registry
from .store import Ctx, Store, selector_to_string
from .util import (ApiError, bad_request, conflict, not_found, parse_field_selector,
                   parse_label_selector)

try:
    import yaml as _yaml

    class _Loader(_yaml.SafeLoader):
        """SafeLoader that keeps timestamps as strings, as Kubernetes' YAML decoder does."""

    _Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in _yaml.SafeLoader.yaml_implicit_resolvers.items()}
except ImportError:  # PyYAML is optional; JSON is YAML too
    _yaml = None

_PATCH_TYPES = {"application/merge-patch+json": "merge",
                "application/strategic-merge-patch+json": "strategic",
                "application/json-patch+json": "json",
                "application/apply-patch+yaml": "apply",
                "application/apply-patch+cbor": "apply"}


def load_yaml_docs(text):
    if _yaml is not None:
        return [d for d in _yaml.load_all(text, Loader=_Loader) if d]
    return [json.loads(text)]


_WATCH_BATCH_SECONDS = 0.005  # longest a watch event waits for others to share its write


class _Route:
    __slots__ = ("rt", "ns", "name", "sub")

    def __init__(self, rt, ns, name, sub):
        self.rt, self.ns, self.name, self.sub = rt, ns, name, sub


class FakeApiServer:
    def __init__(self, port=0, crd_files=(), window=10000, bookmark_interval=5.0,
                 controllers=True, host="127.0.0.1", tls_cert=None, tls_key=None,
                 token=None):
        self.token = token          # when set, API requests need `Authorization: Bearer <token>`
        self.tls_cert = tls_cert
        self.registry = Registry()
        self.store = Store(self.registry, window=window)
        self.bookmark_interval = bookmark_interval
        files = []
        for path in crd_files:  # a file, or a directory of *.yaml/*.yml/*.json (chart crds/)
            if os.path.isdir(path):
                files += sorted(os.path.join(path, n) for n in os.listdir(path)
                                if n.endswith((".yaml", ".yml", ".json")))
            else:
                files.append(path)
        for path in files:
            with open(path) as f:
                for doc in load_yaml_docs(f.read()):
                    if doc.get("kind") == "CustomResourceDefinition":
                        self.store.create(self.crd_type(), "", doc, Ctx("fakeapi"))
        self.controllers = Controllers(self.store, enabled=controllers)
        server = self

        class Handler(_Handler):
            api = server

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many clients connect at once (workers + watches)

        self.httpd = Server((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        scheme = "http"
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = None
        self._stopping = False
        self.faults = []
        self._fault_lock = threading.Lock()

    def inject_fault(self, method, path):
        """Test hook: answer a matching request with an error instead of serving it."""
        with self._fault_lock:
            for rule in self.faults:
                if rule.get("method", method).upper() != method:
                    continue
                if not re.search(rule.get("path", ""), path):
                    continue
                if rule.get("count", 1) == 0:
                    continue
                if rule.get("count", 1) > 0:
                    rule["count"] = rule.get("count", 1) - 1
                code = int(rule.get("code", 500))
                reason = rule.get("reason") or {409: "Conflict", 410: "Expired",
                                                429: "TooManyRequests", 500: "InternalError",
                                                503: "ServiceUnavailable"}.get(code, "Unknown")
                raise ApiError(code, reason, rule.get("message") or f"fakeapi: injected "
                               f"{code} for {method} {path}")

    def crd_type(self):
        return self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True,
                                        name="fakeapi-http")
        self._thread.start()
        self.controllers.start()
        return self

    def stop(self):
        self._stopping = True
        self.controllers.stop()
        with self.store.cond:
            self.store.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path, namespace="default", token=None):
        """Writes a kubeconfig pointing at this server; returns the path."""
        token = token or self.token or "fake-token"
        ca = ""
        if self.tls_cert:
            with open(self.tls_cert, "rb") as f:
                ca = ("    certificate-authority-data: " + base64.b64encode(f.read()).decode()
                      + "\n")
        text = (
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
            f"    server: {self.url}\n{ca}users:\n- name: fake\n  user:\n"
            f"    token: {token}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
            f"    namespace: {namespace}\ncurrent-context: fake\n")
        with open(path, "w") as f:
            f.write(text)
        return path


class _Headers:
    """Request headers, looked up without regard to case (the part of email.message.Message that
    handlers use). The standard library parses headers with the e-mail parser, which cost the
    fake more CPU than serving most requests; API clients send plain `Name: value` lines."""

    __slots__ = ("_items", "_by_name")

    def __init__(self):
        self._items = []
        self._by_name = {}

    def add(self, name, value):
        self._items.append((name, value))
        self._by_name.setdefault(name.lower(), value)

    def get(self, name, default=None):
        return self._by_name.get(name.lower(), default)

    def __getitem__(self, name):
        return self._by_name.get(name.lower())

    def __contains__(self, name):
        return name.lower() in self._by_name

    def get_all(self, name, default=None):
        vals = [v for k, v in self._items if k.lower() == name.lower()]
        return vals or default

    def items(self):
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def values(self):
        return [v for _, v in self._items]

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self.keys())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api = None  # set by FakeApiServer

    def parse_request(self):
        """The request line and headers (see _Headers). False after an error reply."""
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        words = line.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {line!r}")
            return False
        self.command, self.path, self.request_version = words
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        headers = _Headers()
        while True:
            raw = self.rfile.readline(65537)
            if len(raw) > 65536:
                self.send_error(431, "Line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(raw, "iso-8859-1").partition(":")
            if not sep or not name.strip():
                self.send_error(400, f"Bad header line {raw!r}")
                return False
            headers.add(name.strip(), value.strip())
            if len(headers) > 100:
                self.send_error(431, "Too many headers")
                return False
        self.headers = headers
        conn = (headers.get("Connection") or "").lower()
        self.close_connection = conn == "close" or (
            self.request_version == "HTTP/1.0" and conn != "keep-alive")
        if (headers.get("Expect") or "").lower() == "100-continue" and \
                self.request_version != "HTTP/1.0":
            return self.handle_expect_100()
        return True

    def log_message(self, fmt, *args):  # quiet; set FAKEAPI_LOG=1 to see requests
        if os.environ.get("FAKEAPI_LOG"):
            sys.stderr.write("fakeapi: " + (fmt % args) + "\n")

    # ------------------------------------------------------------ plumbing

    def _send(self, code, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "fake")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.command != "HEAD" and hasattr(self, "_headers_buffer"):
            # Headers and body in one write (end_headers would write the headers alone first).
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(data)
            self.flush_headers()
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        return raw

    def _parse_body(self, raw, ctype):
        if not raw:
            return None
        if "protobuf" in ctype:
            try:
                return proto.decode(raw)
            except (proto.ProtoError, UnicodeDecodeError, IndexError) as e:
                raise ApiError(415, "UnsupportedMediaType", f"fakeapi: {e}")
        text = raw.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            if _yaml is not None and ("yaml" in ctype):
                try:
                    return _yaml.load(text, Loader=_Loader)
                except _yaml.YAMLError as e:
                    raise bad_request(f"error decoding YAML: {e}")
            raise bad_request("couldn't get version/kind; json parse error: invalid JSON")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        self.q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                              keep_blank_values=True).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        try:
            raw = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            if parts[:1] != ["fake"]:
                self._authenticate(parts)
                self.api.inject_fault(method, url.path)
            self._route(method, parts, raw)
        except ApiError as e:
            self._send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # report, keep serving
            traceback.print_exc()
            self._send(500, ApiError(500, "InternalError", f"fakeapi: {e!r}").status())

    def _authenticate(self, parts):
        if not self.api.token or parts[:1] in (["healthz"], ["readyz"], ["livez"]):
            return
        if self.headers.get("Authorization", "") != f"Bearer {self.api.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    # ------------------------------------------------------------ routing

    def _route(self, method, parts, raw):
        api = self.api
        reg = api.registry
        if not parts:
            return self._send(200, {"paths": ["/api", "/api/v1", "/apis", "/version",
                                              "/openapi/v2", "/openapi/v3"]})
        head = parts[0]
        if head in ("healthz", "readyz", "livez"):
            return self._send(200, b"ok", "text/plain")
        if head == "version":
            return self._send(200, D.VERSION)
        if head == "openapi":
            return self._openapi(parts)
        if head == "fake":
            return self._admin(method, parts[1:], raw)
        if head == "api":
            if len(parts) == 1:
                return self._send(200, D.api_versions(f"127.0.0.1:{api.port}"))
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return self._send(200, D.api_group_list(reg))
            if len(parts) == 2:
                g = D.api_group(reg, parts[1])
                if g is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested "
                                   "resource")
                return self._send(200, g)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            doc = D.resource_list(reg, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested "
                               "resource")
            return self._send(200, doc)
        route = self._resolve(group, version, rest)
        return self._resource(method, route, raw)

    def _resolve(self, group, version, rest):
        reg = self.api.registry
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns = rest[1]
            rest = rest[2:]
        plural = rest[0]
        rt = reg.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced and ns:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        scalable = rt.group == "apps" and rt.plural in ("deployments", "statefulsets")
        if sub and not (sub == "status" and rt.has_status) and not (
                sub == "finalize" and rt.plural == "namespaces") and not (
                sub == "scale" and scalable):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Route(rt, ns, name, sub if sub in ("status", "scale") else "")

    def _ctx(self):
        ua = self.headers.get("User-Agent", "")
        manager = self.q.get("fieldManager") or (ua.split("/")[0] if ua else "unknown")
        fv = self.q.get("fieldValidation") or self.headers.get("Field-Validation") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f"fieldValidation must be one of Ignore, Warn, Strict; got {fv}")
        force = self.q.get("force", "false").lower() in ("true", "1")
        return Ctx(manager, fv, force, dry_run=bool(self.q.get("dryRun")),
                   explicit_manager=bool(self.q.get("fieldManager")))

    def _reply_obj(self, code, obj, ctx):
        headers = {}
        if ctx.warnings:
            headers["Warning"] = ", ".join('299 - ' + json.dumps(w) for w in ctx.warnings)
        if "as=Table" in (self.headers.get("Accept") or "") and isinstance(obj, dict) \
                and "metadata" in obj and "kind" in obj:
            rt = self.api.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            if rt is not None:
                return self._send(code, T.to_table(rt, [obj], obj["metadata"].get(
                    "resourceVersion", ""), self.q.get("includeObject", "Metadata")),
                    headers=headers)
        self._send(code, obj, headers=headers)

    def _resource(self, method, r, raw):
        store = self.api.store
        rt = r.rt
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if r.sub == "scale":
            return self._scale(method, r, raw, ctype)
        if method == "GET":
            if r.name:
                if self.q.get("watch") in ("1", "true"):
                    return self._watch(r, name=r.name)
                return self._reply_obj(200, store.get(rt, r.ns, r.name), Ctx())
            if self.q.get("watch") in ("1", "true"):
                return self._watch(r)
            return self._list(r)
        if method == "POST":
            if r.name:
                raise ApiError(405, "MethodNotAllowed", "POST is not supported on a named "
                               "resource")
            ctx = self._ctx()
            body = self._parse_body(raw, ctype)
            obj = store.create(rt, r.ns, body, ctx)
            return self._reply_obj(201, obj, ctx)
        if not r.name:
            if method == "DELETE":
                ctx = self._ctx()
                opts = self._parse_body(raw, ctype) or {}
                items = store.delete_collection(rt, r.ns, self.q.get("labelSelector", ""),
                                                self.q.get("fieldSelector", ""), ctx, opts)
                return self._send(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                        "metadata": {}, "items": items})
            raise ApiError(405, "MethodNotAllowed", f"{method} needs a resource name")
        ctx = self._ctx()
        if method == "PUT":
            body = self._parse_body(raw, ctype)
            return self._reply_obj(200, store.update(rt, r.ns, r.name, body, ctx, r.sub), ctx)
        if method == "PATCH":
            ptype = _PATCH_TYPES.get(ctype)
            if ptype is None:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an "
                               f"unknown format - accepted media types include: "
                               f"{', '.join(_PATCH_TYPES)}")
            if ptype != "apply" and self.q.get("force"):
                raise bad_request("force=true is only supported on apply patches")
            body = self._parse_body(raw, "yaml" if ptype == "apply" else ctype)
            existed = True
            if ptype == "apply":
                try:
                    store.get(rt, r.ns, r.name)
                except ApiError:
                    existed = False
            obj = store.patch(rt, r.ns, r.name, ptype, body, ctx, r.sub)
            return self._reply_obj(200 if existed else 201, obj, ctx)
        if method == "DELETE":
            opts = self._parse_body(raw, ctype) or {}
            if self.q.get("propagationPolicy"):
                opts["propagationPolicy"] = self.q["propagationPolicy"]
            obj = store.delete(rt, r.ns, r.name, ctx, opts)
            gone = not obj["metadata"].get("deletionTimestamp") or not obj["metadata"].get(
                "finalizers")
            return self._reply_obj(200 if gone else 202, obj, ctx)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _scale(self, method, r, raw, ctype):
        """autoscaling/v1 Scale view of a Deployment/StatefulSet's spec.replicas."""
        store = self.api.store
        ctx = Ctx()
        if method in ("PUT", "PATCH"):
            ctx = self._ctx()
            body = self._parse_body(raw, ctype) or {}
            if method == "PATCH":
                ptype = _PATCH_TYPES.get(ctype, "merge")
                cur = self._scale_obj(store.get(r.rt, r.ns, r.name))
                body = (P.json_patch(cur, body) if ptype == "json" else P.merge_patch(cur, body))
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f"Scale.autoscaling \"{r.name}\" is invalid: "
                               "spec.replicas: Invalid value: must be a non-negative integer")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            with store.lock:
                obj = store.get(r.rt, r.ns, r.name)
                if rv and rv != obj["metadata"]["resourceVersion"]:
                    raise conflict(r.rt, r.name)
                store.patch(r.rt, r.ns, r.name, "merge", {"spec": {"replicas": replicas}}, ctx)
        elif method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on scale")
        return self._send(200, self._scale_obj(store.get(r.rt, r.ns, r.name)))

    @staticmethod
    def _scale_obj(obj):
        md = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                "creationTimestamp") if k in md},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selector_to_string((obj.get("spec") or {}).get(
                               "selector") or {})}}

    # ------------------------------------------------------------ list / watch

    def _list(self, r):
        store = self.api.store
        rv_match = self.q.get("resourceVersionMatch", "")
        want_rv = self.q.get("resourceVersion", "")
        items, rv = store.list(r.rt, r.ns, self.q.get("labelSelector", ""),
                               self.q.get("fieldSelector", ""))
        if rv_match == "Exact" and want_rv and int(want_rv) != rv:
            raise ApiError(410, "Expired", f"too old resource version: {want_rv} ({rv})")
        start = 0
        if self.q.get("continue"):
            try:
                tok = json.loads(base64.b64decode(self.q["continue"]))
                start = int(tok["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid")
        limit = int(self.q.get("limit") or 0)
        cont = None
        if limit > 0 and start + limit < len(items):
            cont = base64.b64encode(json.dumps({"rv": rv, "start": start + limit}).encode()
                                    ).decode()
            items = items[start:start + limit]
        else:
            items = items[start:]
        if "as=Table" in (self.headers.get("Accept") or ""):
            return self._send(200, T.to_table(r.rt, items, rv, self.q.get("includeObject",
                                                                           "Metadata"), cont))
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = len(items)
        body = {"kind": r.rt.list_kind, "apiVersion": r.rt.api_version, "metadata": meta,
                "items": items}
        self._send(200, body)

    def _watch(self, r, name=None):
        api = self.api
        store = api.store
        rt = r.rt
        key = (rt.group, rt.plural)
        lsel = parse_label_selector(self.q.get("labelSelector", ""))
        fsel = parse_field_selector(self.q.get("fieldSelector", ""))
        if name:
            fsel_base = fsel
            fsel = lambda o: o["metadata"]["name"] == name and fsel_base(o)  # noqa: E731

        def match(o):
            return o is not None and lsel(o["metadata"].get("labels")) and fsel(o)

        timeout = float(self.q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        bookmarks = self.q.get("allowWatchBookmarks") in ("1", "true")
        initial_end = self.q.get("sendInitialEvents") == "true"
        want = self.q.get("resourceVersion", "")
        initial = []
        with store.lock:
            epoch = store.watch_epoch
            if want in ("", "0") or initial_end:
                items, last = store.list(rt, r.ns, "", "")
                initial = [o for o in items if match(o)]
            else:
                try:
                    last = int(want)
                except ValueError:
                    raise bad_request(f"invalid resourceVersion {want!r}")
                if last < store.oldest_rv:
                    raise ApiError(410, "Expired", f"too old resource version: {last} "
                                   f"({store.oldest_rv})")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def bookmark(rv, annotations=None):
            md = {"resourceVersion": str(rv)}
            if annotations:
                md["annotations"] = annotations
            chunk((json.dumps({"type": "BOOKMARK", "object": {
                "kind": rt.kind, "apiVersion": rt.api_version, "metadata": md}}) + "\n").encode())

        as_table = "as=Table" in (self.headers.get("Accept") or "")
        include = self.q.get("includeObject", "Metadata")
        first_table = [True]

        def encode(ev_type, obj):
            if as_table:  # `kubectl get -w`: each event carries a one-row Table
                t = T.to_table(rt, [obj], obj["metadata"].get("resourceVersion", ""), include)
                if not first_table[0]:
                    t["columnDefinitions"] = []
                first_table[0] = False
                obj = t
            return (json.dumps({"type": ev_type, "object": obj}) + "\n").encode()

        try:
            for o in initial:
                chunk(encode("ADDED", o))
            if initial_end and bookmarks:
                bookmark(last, {"k8s.io/initial-events-end": "true"})
            last_bm = time.monotonic()
            while not api._stopping:
                now = time.monotonic()
                if now >= deadline:
                    break
                out = []
                gone = False
                with store.cond:
                    i = bisect.bisect_right(store.event_rvs, last)
                    if i == len(store.event_rvs) and last >= store.oldest_rv and \
                            epoch == store.watch_epoch:
                        wait = deadline - now
                        if bookmarks:
                            wait = min(wait, max(0.01, api.bookmark_interval - (now - last_bm)))
                        store.cond.wait(timeout=wait)
                        i = bisect.bisect_right(store.event_rvs, last)
                    if last < store.oldest_rv or epoch != store.watch_epoch:
                        gone = True
                    else:
                        for ev in store.events[i:]:
                            if ev.key != key or (r.ns and ev.ns != r.ns):
                                continue
                            new_m = match(ev.obj)
                            etype = None
                            if ev.type == "MODIFIED" and ev.old is not None:
                                old_m = match(ev.old)
                                if new_m and not old_m:
                                    etype = "ADDED"
                                elif old_m and not new_m:
                                    etype = "DELETED"
                                elif new_m:
                                    etype = ev.type
                            elif new_m:
                                etype = ev.type
                            if etype is None:
                                continue
                            if as_table:
                                out.append((etype, ev.obj))
                            else:
                                out.append(ev.encoded(etype))
                        last = store.rv
                if gone:
                    chunk((json.dumps({"type": "ERROR", "object": ApiError(
                        410, "Expired", f"too old resource version: {last} "
                        f"({store.oldest_rv})").status()}) + "\n").encode())
                    break
                if out:
                    # One chunk (one write) per batch of events, newline-delimited as always;
                    # then a few milliseconds for more events to gather, so that a burst of
                    # writes is sent in a few batches rather than waking every watch per write.
                    chunk(b"".join(encode(*line) for line in out) if as_table else b"".join(out))
                    time.sleep(_WATCH_BATCH_SECONDS)
                if bookmarks and time.monotonic() - last_bm >= api.bookmark_interval:
                    bookmark(last)
                    last_bm = time.monotonic()
            chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # ------------------------------------------------------------ openapi

    def _openapi(self, parts):
        reg = self.api.registry
        if len(parts) >= 2 and parts[1] == "v2":
            if "protobuf" in (self.headers.get("Accept") or "") and "json" not in (
                    self.headers.get("Accept") or "").split(",")[0]:
                return self._send(200, b"", "application/com.github.proto-openapi.spec.v2.v1.0"
                                                "+protobuf")
            return self._send(200, D.openapi_v2_json())
        if len(parts) >= 2 and parts[1] == "v3":
            if len(parts) == 2:
                return self._send(200, D.openapi_v3_root(reg))
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                return self._send(200, D.openapi_v3_gv(reg, "", rest[1]))
            if rest[0] == "apis" and len(rest) == 3:
                return self._send(200, D.openapi_v3_gv(reg, rest[1], rest[2]))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ------------------------------------------------------------ admin hooks (/fake/...)

    def _admin(self, method, parts, raw):
        api = self.api
        store = api.store
        body = self._parse_body(raw, "application/json") or {}
        what = parts[0] if parts else ""
        if what == "compact" and method == "POST":
            store.compact(bool(body.get("expireWatches")))
            return self._send(200, {"oldestResourceVersion": store.oldest_rv})
        if what == "config" and method == "POST":
            if "eventWindow" in body:
                store.set_window(body["eventWindow"])
            if "bookmarkInterval" in body:
                api.bookmark_interval = float(body["bookmarkInterval"])
            return self._send(200, {"eventWindow": store.window,
                                    "bookmarkInterval": api.bookmark_interval})
        if what == "controllers":
            if method == "POST":
                api.controllers.configure(body)
            return self._send(200, api.controllers.describe())
        if what == "pod-fates":
            if method == "POST":
                api.controllers.set_fates(body.get("rules", []))
            return self._send(200, {"rules": api.controllers.fates})
        if what == "hpa" and method == "POST" and len(parts) == 3:
            api.controllers.set_hpa(parts[1], parts[2], body)
            return self._send(200, {"ok": True})
        if what == "writes":
            if method == "DELETE":
                with store.lock:
                    store.writes.clear()
                    store.write_count = 0
            with store.lock:
                return self._send(200, {"count": store.write_count, "writes": list(store.writes)})
        if what == "faults":
            if method == "POST":
                with api._fault_lock:
                    api.faults = [dict(r) for r in body.get("rules", [])]
            with api._fault_lock:
                return self._send(200, {"rules": api.faults})
        if what == "sync" and method == "POST":
            api.controllers.sync_now()
            return self._send(200, {"ok": True})
        if what == "state":
            with store.lock:
                return self._send(200, {"resourceVersion": store.rv,
                                        "oldestResourceVersion": store.oldest_rv,
                                        "eventWindow": store.window})
        raise not_found(api.registry.get("", "v1", "namespaces"), "/fake/" + "/".join(parts))
