#!/usr/bin/env python3
"""Asya runtime for Python handlers: one file, standard library only, Python >= 3.8.

The sidecar talks to this process over a Unix stream socket at
``${ASYA_SOCKET_DIR:-/var/run/asya}/${ASYA_SOCKET_NAME:-asya-runtime.sock}``. Each frame is a
4-byte big-endian length followed by that many bytes of UTF-8 JSON. The request is the queue
message (an envelope); the response is always a JSON array: ``[{payload, route, headers?}, ...]``
or ``[{"error": code, "details": {"message", "type", "traceback"}}]``. A connection may carry
any number of request/response frames in a row; a client may also open one connection per
message and close it.

Handlers (``ASYA_HANDLER``):
    module.func            a function, called once per message
    module.Class.method    ``Class()`` is instantiated once at startup, ``method`` called per message
Both may be ``async def``; coroutines run on one asyncio event loop in a dedicated thread.

Modes (``ASYA_HANDLER_MODE``):
    payload   (default) the handler gets ``envelope["payload"]`` and returns the new payload(s);
              the runtime advances ``route.current`` by one. Headers of the current message are
              available through ``asya_runtime.current_headers()``.
    envelope  the handler gets the whole envelope and returns envelope(s); it advances
              ``route.current`` itself.

Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 configuration / handler loading / socket setup
error, 3 handler timeout (a handler ran past ``ASYA_RUNTIME_TIMEOUT``).

See README.md beside this file for every environment variable.
"""

import contextvars
import copy
import importlib
import inspect
import json
import logging
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

__all__ = [
    "current_headers",
    "current_attempt",
    "main",
    "parse_duration",
    "EXIT_OK",
    "EXIT_CONFIG_ERROR",
    "EXIT_HANDLER_TIMEOUT",
]

EXIT_OK = 0
EXIT_CONFIG_ERROR = 1
EXIT_HANDLER_TIMEOUT = 3

DEFAULT_SOCKET_DIR = "/var/run/asya"
DEFAULT_SOCKET_NAME = "asya-runtime.sock"
READY_FILE_NAME = "runtime-ready"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_CHUNK_SIZE = 65536
DEFAULT_ASYNC_CONCURRENCY = 64
LISTEN_BACKLOG = 128
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0x40)
_ONESHOT_IN = select.EPOLLIN | select.EPOLLONESHOT

ERR_PROCESSING = "processing_error"
ERR_PARSING = "msg_parsing_error"
ERR_CONNECTION = "connection_error"

logger = logging.getLogger("asya.runtime")

_HANDLER_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)+$")
_FRAME_HEADER = struct.Struct(">I")
_pack_len = _FRAME_HEADER.pack
_unpack_len = _FRAME_HEADER.unpack_from


class FrameTooLarge(ValueError):
    """A request frame declared more bytes than ASYA_MAX_MESSAGE_BYTES."""


class ResponseTooLarge(ValueError):
    """The encoded response is larger than ASYA_MAX_MESSAGE_BYTES."""


class ConfigError(Exception):
    """Invalid environment; the runtime exits with EXIT_CONFIG_ERROR."""


# --------------------------------------------------------------------------------------------
# Headers of the message being handled (per thread for sync handlers, per task for async ones).

_HEADERS = contextvars.ContextVar("asya_headers", default=None)


def current_headers():
    """Return the ``headers`` object of the message being handled.

    Works in payload and envelope mode, for sync and async handlers, under concurrency. Returns
    an empty dict when the message has no headers or when called outside a handler. Treat the
    result as read-only.
    """
    headers = _HEADERS.get()
    if type(headers) is dict:
        return headers
    return {}


def current_attempt():
    """Return the 1-based attempt number (header ``x-asya-attempt``) of the current message."""
    value = current_headers().get("x-asya-attempt")
    try:
        attempt = int(value)
    except (TypeError, ValueError):
        return 1
    return attempt if attempt >= 1 else 1


# --------------------------------------------------------------------------------------------
# JSON

def _reject_constant(name):
    raise ValueError("Invalid JSON constant %s (NaN and Infinity are not JSON)" % name)


_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_decode_json = _JSON_DECODER.decode
_scan_json = _JSON_DECODER.scan_once


def _decode_request(text):
    """``_decode_json(text)`` (same result, same errors) without its two whitespace regex matches
    when the text is one JSON value with nothing around it, as a sidecar sends it."""
    try:
        obj, end = _scan_json(text, 0)
    except Exception:
        return _decode_json(text)  # raises the decoder's own error
    if end != len(text):
        return _decode_json(text)  # surrounding whitespace, or extra data (an error)
    return obj


_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_encode_json = _JSON_ENCODER.encode
_encode_json_ascii = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode


def _to_utf8(obj):
    """Serialise ``obj`` as compact JSON in UTF-8 (raises ValueError/TypeError if impossible)."""
    text = _encode_json(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from a "\ud800" escape in the input): escape them instead.
        return _encode_json_ascii(obj).encode("ascii")


def _make_utf8_encoder():
    """Returns a function with the result and errors of ``_to_utf8`` for ONE thread's use: it keeps
    one C encoder instead of building one per call (json.JSONEncoder.encode does), which is ~12 %
    of encoding a small response. Falls back to ``_to_utf8`` where the C encoder is missing or
    does not give the same bytes."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:
        return _to_utf8
    markers = {}  # circular-reference check, as check_circular=True
    try:
        encode = c_make_encoder(markers, _JSON_ENCODER.default, json.encoder.encode_basestring,
                                None, ":", ",", False, False, False)
    except TypeError:
        return _to_utf8
    join = "".join

    def to_utf8(obj):
        try:
            text = join(encode(obj, 0))
        except BaseException:
            markers.clear()  # an error leaves the containers it was inside marked
            raise
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return _encode_json_ascii(obj).encode("ascii")

    sample = [{"p": [1, -2.5, None, True, False, "\u00e9\"\n", {"k": []}], "r": {}}, "s", 7]
    try:
        if to_utf8(sample) != _to_utf8(sample):
            return _to_utf8
    except Exception:
        return _to_utf8
    return to_utf8


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
                    bool: "boolean", type(None): "null"}


def _json_type(value):
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------------------------
# Configuration

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NUMBER_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)$")


def parse_duration(text):
    """Parse a Go-style duration (``300ms``, ``30s``, ``5m``, ``1h``, ``1m30s``) or a bare number
    of seconds. Returns seconds as a float; raises ValueError on anything else (negative too)."""
    s = text.strip()
    if s.startswith("+"):
        s = s[1:]
    if not s:
        raise ValueError("empty duration")
    if _NUMBER_RE.match(s):
        return float(s)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if not m:
            raise ValueError("invalid duration %r (expected e.g. 300ms, 30s, 5m, 1h, 1m30s or a "
                             "number of seconds)" % text)
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds):
    """Go-like rendering for logs: 5m0s, 1.5s, 300ms."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return "%gms" % round(seconds * 1000, 3)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += "%dh" % hours
    if hours or minutes:
        out += "%dm" % minutes
    return out + ("%gs" % round(secs, 3))


class Config(object):
    """Everything read from the environment, validated once at startup."""

    def __init__(self, env):
        def get(name, default=""):
            value = env.get(name)
            return default if value is None or value.strip() == "" else value.strip()

        self.handler = get("ASYA_HANDLER")
        mode = get("ASYA_HANDLER_MODE", "payload").lower()
        if mode not in ("payload", "envelope"):
            raise ConfigError("Invalid ASYA_HANDLER_MODE=%r: expected 'payload' or 'envelope'"
                              % env.get("ASYA_HANDLER_MODE"))
        self.mode = mode
        self.envelope_mode = mode == "envelope"

        # As the original: only the literal "true" (any case) enables validation.
        raw_validation = env.get("ASYA_ENABLE_VALIDATION")
        self.validation_raw = raw_validation
        self.validate = (raw_validation if raw_validation is not None else "true").lower() == "true"

        self.socket_dir = get("ASYA_SOCKET_DIR", DEFAULT_SOCKET_DIR)
        self.socket_name = get("ASYA_SOCKET_NAME", DEFAULT_SOCKET_NAME)
        self.socket_path = os.path.join(self.socket_dir, self.socket_name)
        self.ready_path = os.path.join(self.socket_dir, READY_FILE_NAME)

        chmod = env.get("ASYA_SOCKET_CHMOD")
        if chmod is None:
            chmod = "0o666"
        chmod = chmod.strip()
        if chmod == "":
            self.socket_mode = None
        else:
            try:
                self.socket_mode = int(chmod, 8)
            except ValueError:
                raise ConfigError("Invalid ASYA_SOCKET_CHMOD=%r: expected an octal mode such as "
                                  "0o666 or 660, or empty to skip chmod" % chmod)
            if not 0 <= self.socket_mode <= 0o7777:
                raise ConfigError("Invalid ASYA_SOCKET_CHMOD=%r: out of range" % chmod)

        timeout = get("ASYA_RUNTIME_TIMEOUT")
        if timeout:
            try:
                self.timeout = parse_duration(timeout)
            except ValueError as exc:
                raise ConfigError("Invalid ASYA_RUNTIME_TIMEOUT=%r: %s" % (timeout, exc))
        else:
            self.timeout = DEFAULT_TIMEOUT_S

        self.max_bytes = self._positive_int(get, "ASYA_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)
        if self.max_bytes > 0xFFFFFFFF:
            self.max_bytes = 0xFFFFFFFF  # a 4-byte length prefix cannot say more
        self.chunk_size = max(16, self._positive_int(get, "ASYA_CHUNK_SIZE", DEFAULT_CHUNK_SIZE))
        self.concurrency = self._positive_int(get, "ASYA_RUNTIME_CONCURRENCY", 0)  # 0 = auto


    @staticmethod
    def _positive_int(get, name, default):
        raw = get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError("Invalid %s=%r: expected a positive integer" % (name, raw))
        if value <= 0:
            raise ConfigError("Invalid %s=%r: expected a positive integer" % (name, raw))
        return value


# --------------------------------------------------------------------------------------------
# Handler loading

class HandlerLoadError(Exception):
    """The handler named by ASYA_HANDLER cannot be loaded; the runtime exits with code 1."""


def _is_missing_module(exc, module_path):
    """True if ``exc`` says that ``module_path`` itself (or one of its parent packages) does not
    exist, as opposed to an ImportError raised while executing the module."""
    if not isinstance(exc, ModuleNotFoundError):
        return False
    name = getattr(exc, "name", None)
    if not name:
        return False
    return module_path == name or module_path.startswith(name + ".")


def _is_async_callable(fn):
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return call is not None and not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)


def load_handler(spec):
    """Resolve ``module.func`` or ``module.Class.method`` (longest importable module prefix).

    Returns ``(callable, is_async)``. Raises HandlerLoadError with a clear message.
    """
    if not spec:
        raise HandlerLoadError("ASYA_HANDLER is not set (expected 'module.function' or "
                               "'module.Class.method')")
    if not _HANDLER_RE.match(spec):
        raise HandlerLoadError("Invalid ASYA_HANDLER format: %r (expected 'module.function' or "
                               "'module.Class.method' made of Python identifiers)" % spec)
    parts = spec.split(".")
    module = None
    module_path = ""
    attr_parts = []
    tried = []
    for i in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:i])
        tried.append(candidate)
        try:
            module = importlib.import_module(candidate)
        except ImportError as exc:
            if _is_missing_module(exc, candidate):
                continue
            raise HandlerLoadError("Importing module %r for ASYA_HANDLER=%s failed:\n%s"
                                   % (candidate, spec, traceback.format_exc()))
        except BaseException:
            raise HandlerLoadError("Importing module %r for ASYA_HANDLER=%s failed:\n%s"
                                   % (candidate, spec, traceback.format_exc()))
        module_path = candidate
        attr_parts = parts[i:]
        break
    if module is None:
        raise HandlerLoadError("Could not import a module for ASYA_HANDLER=%s (tried %s; sys.path=%s)"
                               % (spec, ", ".join(tried), sys.path))

    if len(attr_parts) == 1:
        name = attr_parts[0]
        if not hasattr(module, name):
            raise HandlerLoadError("Module %r has no attribute %r (ASYA_HANDLER=%s)"
                                   % (module_path, name, spec))
        fn = getattr(module, name)
        if not callable(fn):
            raise HandlerLoadError("ASYA_HANDLER=%s is not callable (it is a %s)"
                                   % (spec, type(fn).__name__))
        logger.info("Loaded function handler: module=%s function=%s", module_path, name)
        return fn, _is_async_callable(fn)

    if len(attr_parts) == 2:
        class_name, method_name = attr_parts
        if not hasattr(module, class_name):
            raise HandlerLoadError("Module %r has no attribute %r (ASYA_HANDLER=%s)"
                                   % (module_path, class_name, spec))
        cls = getattr(module, class_name)
        if not inspect.isclass(cls):
            raise HandlerLoadError("%s.%s is not a class (ASYA_HANDLER=%s)"
                                   % (module_path, class_name, spec))
        if "__init__" in cls.__dict__:
            try:
                sig = inspect.signature(cls.__init__)
            except (TypeError, ValueError):
                sig = None
            if sig is not None:
                for param in list(sig.parameters.values())[1:]:
                    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                        continue
                    if param.default is param.empty:
                        raise HandlerLoadError(
                            "Class handler %s.__init__() parameter '%s' must have a default value: "
                            "the runtime instantiates the class once with no arguments"
                            % (class_name, param.name))
        try:
            instance = cls()
        except BaseException:
            raise HandlerLoadError("Failed to instantiate %s.%s():\n%s"
                                   % (module_path, class_name, traceback.format_exc()))
        if not hasattr(instance, method_name):
            raise HandlerLoadError("Class %s does not have method '%s' (ASYA_HANDLER=%s)"
                                   % (class_name, method_name, spec))
        method = getattr(instance, method_name)
        if not callable(method):
            raise HandlerLoadError("%s.%s is not callable (ASYA_HANDLER=%s)"
                                   % (class_name, method_name, spec))
        logger.info("Loaded class handler: module=%s class=%s method=%s (instantiated once)",
                    module_path, class_name, method_name)
        return method, _is_async_callable(method)

    raise HandlerLoadError("Invalid attribute path %r in ASYA_HANDLER=%s: expected 'function' or "
                           "'Class.method' after module %r" % (".".join(attr_parts), spec, module_path))


# --------------------------------------------------------------------------------------------
# Validation (reference-dataplane section 2.4; messages are part of the contract)

def _validate_route_and_fields(e):
    """Rules 1-9 on a dict; defaults route.current to 0 (mutating the route)."""
    if "payload" not in e:
        raise ValueError("Missing required field 'payload' in envelope")
    if "route" not in e:
        raise ValueError("Missing required field 'route' in envelope")
    route = e["route"]
    if type(route) is not dict:
        raise ValueError("Field 'route' must be a dict")
    if "actors" not in route:
        raise ValueError("Missing required field 'actors' in route")
    actors = route["actors"]
    if type(actors) is not list:
        raise ValueError("Field 'route.actors' must be a list")
    if "current" not in route:
        logger.debug("Field 'route.current' missing, defaulting to 0")
        route["current"] = 0
    current = route["current"]
    if not isinstance(current, int):
        raise ValueError("Field 'route.current' must be an integer")
    if not actors:
        raise ValueError("Field 'route.actors' cannot be empty")
    if current < 0 or current > len(actors):
        raise ValueError("Invalid route.current=%d: out of bounds for actors of length %d"
                         % (current, len(actors)))
    if "headers" in e and type(e["headers"]) is not dict:
        raise ValueError("Field 'headers' must be a dict")
    return route


def _rebuild(e):
    """Rules 12-13: id must be a string; keep only payload, route, id, parent_id, headers."""
    out = {"payload": e["payload"], "route": e["route"]}
    if "id" in e:
        if type(e["id"]) is not str:
            raise ValueError("Field 'id' must be a string")
        out["id"] = e["id"]
    if "parent_id" in e:
        out["parent_id"] = e["parent_id"]
    if "headers" in e:
        out["headers"] = e["headers"]
    return out


def check_input(e):
    """Validate a decoded request (validate_input without rebuilding it). Raises ValueError."""
    if type(e) is not dict:
        if type(e) is list:
            raise ValueError("Missing required field 'payload' in envelope")
        raise ValueError("Envelope must be a JSON object, got %s" % _json_type(e))
    _validate_route_and_fields(e)
    if "id" in e and type(e["id"]) is not str:
        raise ValueError("Field 'id' must be a string")


def validate_input(e):
    """Validate a decoded request; returns the rebuilt envelope. Raises ValueError."""
    check_input(e)
    return _rebuild(e)


def validate_output(e, in_actors, in_current):
    """Validate one envelope-mode output against the input route as it was before the handler
    ran (``in_actors`` is a private copy). Returns the rebuilt envelope. Raises ValueError."""
    if type(e) is not dict:
        raise ValueError("Output envelope must be a JSON object, got %s" % _json_type(e))
    route = _validate_route_and_fields(e)
    out_actors = route["actors"]
    processed = in_actors[:in_current + 1]
    prefix = out_actors[:len(processed)]
    if prefix != processed:
        raise ValueError(
            "Route modification error: already-processed actors cannot be erased. "
            "Input route had %s (actors 0-%d), but output route starts with %s. "
            "Runtimes can add future actors but must preserve all actors up to current."
            % (processed, in_current, prefix))
    if in_current < len(in_actors) and in_current < len(out_actors):
        expected = in_actors[in_current]
        actual = out_actors[in_current]
        if actual != expected:
            raise ValueError(
                "Route mismatch: input route points to '%s' at position %d, but output route has "
                "'%s' at that position. Actor cannot change its position in the route."
                % (expected, in_current, actual))
    return _rebuild(e)


def _copy_actors(actors):
    for a in actors:
        if type(a) is not str:
            return copy.deepcopy(actors)
    return list(actors)


# --------------------------------------------------------------------------------------------
# Async support: one event loop in a dedicated thread

async def _await_with_headers(fn, arg, headers):
    _HEADERS.set(headers)
    return await fn(arg)


async def _await_awaitable(awaitable, headers):
    _HEADERS.set(headers)
    return await awaitable


class _LoopThread(object):
    def __init__(self):
        import asyncio  # only paid for when a handler is async
        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="asya-asyncio", daemon=True)
        self.thread.start()
        self._started.wait()

    def _run(self):
        self._asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def run(self, coro):
        return self._asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self):
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        self.thread.join(5)


_PLAIN_RESULT_TYPES = frozenset([dict, list, tuple, str, int, float, bool, type(None)])


# --------------------------------------------------------------------------------------------
# The server

class _Worker(object):
    """One serving thread: accepts a connection and serves its frames until EOF."""

    __slots__ = ("rt", "thread", "buf", "mv", "conn", "idle", "deadline", "started", "index",
                 "to_utf8", "waiter")

    def __init__(self, rt, index):
        self.rt = rt
        self.index = index
        self.buf = bytearray(rt.cfg.chunk_size)
        self.mv = memoryview(self.buf)
        self.conn = None
        self.idle = True
        self.deadline = 0.0   # monotonic deadline of the running handler, 0 = none running
        self.started = 0.0
        self.to_utf8 = _make_utf8_encoder()  # this worker's own: not shared between threads
        # The only worker waits for an idle connection's next request together with the epoll
        # set (see _wait_idle); with several workers an idle connection is parked at once.
        self.waiter = None
        if rt._solo:
            self.waiter = select.poll()
            self.waiter.register(rt.poller.fileno(), select.POLLIN)
        self.thread = threading.Thread(target=self.run, name="asya-worker-%d" % index, daemon=True)

    def run(self):
        rt = self.rt
        while not rt.stopping:
            conn = rt.next_connection()
            if conn is None:
                continue
            self.conn = conn
            park = False
            try:
                park = self.serve(conn)
            except Exception:
                logger.exception("Unexpected error while serving a connection")
            finally:
                self.idle = True
                self.conn = None
                if park and not rt.stopping:
                    rt.park(conn)
                else:
                    rt.close_connection(conn)

    def _send_error_and_log(self, conn, code, exc, what):
        logger.warning("%s: %s", code, what)
        try:
            data = self.rt.error_response(code, exc)
            conn.sendall(_pack_len(len(data)) + data)
        except OSError:
            pass

    def serve(self, conn):
        """Serves frames on `conn`; returns True when the connection is idle and should be parked."""
        rt = self.rt
        buf = self.buf
        mv = self.mv
        cap = len(buf)
        max_bytes = rt.cfg.max_bytes
        process = rt.process
        recv_into = conn.recv_into
        sendall = conn.sendall
        waiter = self.waiter
        have = 0  # bytes of buf holding data received but not yet consumed
        while True:
            self.idle = True
            if rt.stopping:
                # Shutting down: serve what the client already sent, then see EOF. (The main
                # thread does the same for connections that were already idle.)
                try:
                    conn.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
            try:
                while have < 4:
                    n = recv_into(mv[have:])
                    if not n:
                        if have:
                            self._send_error_and_log(
                                conn, ERR_CONNECTION,
                                ConnectionError("Connection closed while reading the length prefix "
                                                "(%d of 4 bytes received)" % have),
                                "peer closed the connection inside a length prefix (%d of 4 bytes)"
                                % have)
                        return False
                    have += n
            except OSError as exc:
                if not rt.stopping:
                    logger.warning("%s: reading a request failed: %s", ERR_CONNECTION, exc)
                return False
            self.idle = False
            (length,) = _unpack_len(buf, 0)
            if length > max_bytes:
                self._send_error_and_log(
                    conn, ERR_PARSING,
                    FrameTooLarge("request frame of %d bytes exceeds ASYA_MAX_MESSAGE_BYTES=%d"
                                  % (length, max_bytes)),
                    "request frame of %d bytes exceeds ASYA_MAX_MESSAGE_BYTES=%d; closing the "
                    "connection" % (length, max_bytes))
                return False
            total = length + 4
            if total <= have:
                body = buf[4:total]
                if have == total:
                    have = 0
                else:  # the client already sent (part of) the next frame
                    buf[0:have - total] = buf[total:have]
                    have -= total
            else:
                try:
                    body, have = self._read_rest(conn, length, total, have, cap)
                except OSError as exc:
                    self._send_error_and_log(conn, ERR_CONNECTION, exc,
                                             "reading a %d-byte request failed: %s" % (length, exc))
                    return False
            try:
                response = process(body, self)
            except Exception as exc:  # a bug in the runtime itself: still answer
                logger.exception("Internal error while processing a request")
                response = rt.error_response(ERR_PROCESSING, exc)
            try:
                sendall(_pack_len(len(response)) + response)
            except OSError as exc:
                logger.warning("%s: client went away before the response was sent: %s",
                               ERR_CONNECTION, exc)
                return False
            if have == 0:
                # An idle kept-open connection must not hold this worker. The only worker waits
                # for its next request (or EOF) and for the epoll set in one poll(), and parks it
                # when something else comes first; with several workers, it is parked at once
                # unless the next request is already here (Runtime.park).
                if waiter is not None:
                    if not self._wait_idle(conn):
                        return True
                    try:
                        n = recv_into(mv)  # readable: the next request, EOF or an error
                    except OSError:
                        return False
                else:
                    try:
                        n = recv_into(mv, 0, _MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        return True
                    except OSError:
                        return False
                if not n:
                    return False
                have = n

    def _wait_idle(self, conn):
        """The only worker, `conn` idle: waits in one poll() for `conn` and the epoll set (the
        listener, parked connections, the shutdown pipe). True when `conn` is readable; False
        when something else is, and `conn` should be parked. Costs one system call where parking
        at once costs two (EPOLL_CTL_ADD/MOD, then epoll_wait)."""
        fd = conn.fileno()
        waiter = self.waiter
        self.idle = True  # shutdown() may SHUT_RD it, which wakes this poll()
        waiter.register(fd, select.POLLIN)
        try:
            events = waiter.poll()
        except OSError:
            return False
        finally:
            waiter.unregister(fd)
        for efd, _ in events:
            if efd == fd:
                return True
        return False

    def _read_rest(self, conn, length, total, have, cap):
        """Slow path: the frame was not received in full by the first read(s)."""
        rt = self.rt
        timeout = rt.cfg.timeout
        deadline = time.monotonic() + timeout if timeout > 0 else 0.0
        mv = self.mv
        try:
            if total <= cap:
                while have < total:
                    if deadline:
                        conn.settimeout(max(0.001, deadline - time.monotonic()))
                    n = conn.recv_into(mv[have:])
                    if not n:
                        raise ConnectionError("Connection closed while reading the body (%d of %d "
                                              "bytes received)" % (have - 4, length))
                    have += n
                body = self.buf[4:total]
                if have == total:
                    have = 0
                else:
                    self.buf[0:have - total] = self.buf[total:have]
                    have -= total
                return body, have
            body = bytearray(length)
            got = have - 4
            body[0:got] = self.buf[4:have]
            bmv = memoryview(body)
            while got < length:
                if deadline:
                    conn.settimeout(max(0.001, deadline - time.monotonic()))
                n = conn.recv_into(bmv[got:])
                if not n:
                    raise ConnectionError("Connection closed while reading the body (%d of %d "
                                          "bytes received)" % (got, length))
                got += n
            return body, 0
        except socket.timeout:
            raise ConnectionError("Timed out after %s waiting for the rest of a %d-byte request"
                                  % (format_duration(timeout), length))
        finally:
            if deadline:
                try:
                    conn.settimeout(None)
                except OSError:
                    pass


class Runtime(object):
    def __init__(self, cfg, handler, is_async):
        self.cfg = cfg
        self.handler = handler
        self.is_async = is_async
        self.label = cfg.handler
        self.stopping = False
        self.listener = None
        self.workers = []
        self.loop_thread = _LoopThread() if is_async else None
        # Workers wait on one epoll set holding the listener and idle kept-open connections
        # (both EPOLLONESHOT, so exactly one worker takes each event) plus a shutdown pipe.
        self.poller = None
        self.parked = {}
        self._parked_lock = threading.Lock()
        self._in_poller = set()  # fds of connections registered in the poller (armed or not)
        self._loop_lock = threading.Lock()
        self.debug = logger.isEnabledFor(logging.DEBUG)
        if cfg.concurrency:
            self.concurrency = cfg.concurrency
        else:
            self.concurrency = DEFAULT_ASYNC_CONCURRENCY if is_async else 1
        self._signals = 0
        self._wake_r = self._wake_w = None
        self._solo = False  # one worker: set by _setup_poller

    # ---- per message --------------------------------------------------------------------

    def error_response(self, code, exc, message=None):
        """Encode ``[{"error": code, "details": {message, type, traceback}}]``."""
        try:
            text = message if message is not None else str(exc)
        except Exception:
            text = "<unprintable %s>" % type(exc).__name__
        try:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        except Exception:
            tb = ""
        details = {"message": text, "type": type(exc).__name__, "traceback": tb}
        data = _to_utf8([{"error": code, "details": details}])
        limit = self.cfg.max_bytes
        if len(data) > limit:  # keep even error frames inside the limit
            details["traceback"] = ""
            data = _to_utf8([{"error": code, "details": details}])
            if len(data) > limit:
                details["message"] = text[:max(0, limit // 8)] + "...(truncated)"
                data = _to_utf8([{"error": code, "details": details}])
        return data

    def process(self, body, worker):
        """Turn one request body into one response body (always a JSON array, never raises)."""
        cfg = self.cfg
        debug = self.debug
        if debug:
            t0 = time.monotonic()
            logger.debug("request: %d bytes: %s", len(body), bytes(body[:4096]).decode("utf-8", "replace"))
        envelope_mode = cfg.envelope_mode
        # 1. decode + validate -> msg_parsing_error
        try:
            if not body:
                raise ValueError("Empty request frame (length 0): expected a JSON envelope")
            env = _decode_request(str(body, "utf-8"))
            if cfg.validate:
                if envelope_mode:
                    env = validate_input(env)
                else:  # the handler gets the payload: the rebuilt envelope is never looked at
                    check_input(env)
            elif type(env) is not dict and not envelope_mode:
                raise ValueError("Envelope must be a JSON object, got %s" % _json_type(env))
            if envelope_mode:
                arg = env
                if cfg.validate:
                    in_route = env["route"]
                    in_actors = _copy_actors(in_route["actors"])
                    in_current = in_route["current"]
                headers = env.get("headers") if type(env) is dict else None
            else:
                if not cfg.validate:
                    if "payload" not in env:
                        raise ValueError("Missing required field 'payload' in envelope")
                    route = env.get("route")
                    if type(route) is not dict:
                        raise ValueError("Field 'route' must be a dict")
                    current = route.get("current", 0)
                    if not isinstance(current, int):
                        raise ValueError("Field 'route.current' must be an integer")
                else:
                    route = env["route"]
                    current = route["current"]
                out_route = dict(route)
                out_route["current"] = current + 1
                arg = env["payload"]
                has_headers = "headers" in env
                headers = env["headers"] if has_headers else None
        except Exception as exc:
            logger.warning("%s: %s: %s", ERR_PARSING, type(exc).__name__, exc)
            return self.error_response(ERR_PARSING, exc)

        # 2. call the handler -> processing_error
        timeout = cfg.timeout
        if timeout:
            now = time.monotonic()
            worker.started = now
            worker.deadline = now + timeout
        try:
            if self.is_async:
                result = self.loop_thread.run(_await_with_headers(self.handler, arg, headers))
            else:
                _HEADERS.set(headers)
                result = self.handler(arg)
                if type(result) not in _PLAIN_RESULT_TYPES and inspect.isawaitable(result):
                    result = self._get_loop().run(_await_awaitable(result, headers))
        except BaseException as exc:
            worker.deadline = 0.0
            logger.error("%s: handler %s raised %s: %s\n%s", ERR_PROCESSING, self.label,
                         type(exc).__name__, exc,
                         "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            return self.error_response(ERR_PROCESSING, exc)
        worker.deadline = 0.0

        # 3. normalise and build the outputs
        if result is None:
            items = ()
        elif isinstance(result, (list, tuple)):
            items = result
        else:
            items = (result,)
        if envelope_mode:
            if cfg.validate:
                n = len(items)
                out = []
                try:
                    for i, item in enumerate(items):
                        try:
                            out.append(validate_output(item, in_actors, in_current))
                        except ValueError as exc:
                            raise ValueError("Invalid output envelope[%d/%d]: %s" % (i, n, exc))
                except ValueError as exc:
                    logger.error("%s: %s", ERR_PROCESSING, exc)
                    return self.error_response(ERR_PROCESSING, exc)
            else:
                out = list(items)
        elif len(items) == 1:
            if has_headers:
                out = [{"payload": items[0], "route": out_route, "headers": headers}]
            else:
                out = [{"payload": items[0], "route": out_route}]
        elif has_headers:
            out = [{"payload": p, "route": out_route, "headers": headers} for p in items]
        else:
            out = [{"payload": p, "route": out_route} for p in items]

        # 4. encode
        try:
            data = worker.to_utf8(out)
        except (ValueError, TypeError, RecursionError) as exc:
            msg = "handler %s returned a result that cannot be sent as JSON: %s" % (self.label, exc)
            logger.error("%s: %s", ERR_PROCESSING, msg)
            return self.error_response(ERR_PROCESSING, exc, msg)
        if len(data) > cfg.max_bytes:
            exc = ResponseTooLarge("response of %d bytes exceeds ASYA_MAX_MESSAGE_BYTES=%d"
                                   % (len(data), cfg.max_bytes))
            logger.error("%s: %s", ERR_PROCESSING, exc)
            return self.error_response(ERR_PROCESSING, exc)
        if debug:
            logger.debug("response: %d outputs, %d bytes, %.3f ms: %s", len(out), len(data),
                         (time.monotonic() - t0) * 1000, data[:4096].decode("utf-8", "replace"))
        return data

    def _get_loop(self):
        if self.loop_thread is None:
            with self._loop_lock:
                if self.loop_thread is None:
                    self.loop_thread = _LoopThread()
        return self.loop_thread

    # ---- lifecycle ----------------------------------------------------------------------

    def _bind(self):
        cfg = self.cfg
        path = cfg.socket_path
        try:
            os.makedirs(cfg.socket_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError("Cannot create socket directory %s: %s" % (cfg.socket_dir, exc))
        if os.path.isdir(path):
            raise ConfigError("Socket path %s is a directory" % path)
        try:
            os.unlink(path)
            logger.info("Removed stale socket file %s", path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError("Cannot remove stale socket file %s: %s" % (path, exc))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(max(LISTEN_BACKLOG, 2 * self.concurrency))
        except OSError as exc:
            sock.close()
            raise ConfigError("Cannot listen on %s: %s" % (path, exc))
        if cfg.socket_mode is not None:
            try:
                os.chmod(path, cfg.socket_mode)
            except OSError as exc:
                sock.close()
                raise ConfigError("Cannot chmod socket %s to %s: %s" % (path, oct(cfg.socket_mode), exc))
        self.listener = sock
        logger.info("Listening on %s (mode %s)", path,
                    oct(cfg.socket_mode) if cfg.socket_mode is not None else "unchanged")

    def _setup_poller(self):
        # One worker (the default for sync handlers) is the only thread that accepts, so the
        # listener can block: with no idle kept-open connection to watch, that worker waits in
        # accept() itself (shutdown() wakes it by shutting the listener down). Several workers
        # share the listener through the epoll set, so it must not block.
        self._solo = self.concurrency == 1
        self.listener.setblocking(self._solo)
        self._stop_r, self._stop_w = os.pipe()
        self.poller = select.epoll()
        # One worker: the listener stays armed (level-triggered), so taking a connection costs no
        # re-arming system call. Several workers: EPOLLONESHOT, so exactly one of them takes it.
        self._listener_oneshot = self.concurrency > 1
        self.poller.register(self.listener.fileno(),
                             _ONESHOT_IN if self._listener_oneshot else select.EPOLLIN)
        self.poller.register(self._stop_r, select.EPOLLIN)  # level-triggered: wakes every worker
        # The listener's own accept: returns (fd, address) without the socket.accept() wrapper's
        # per-call conversions of family and type.
        self._accept_fd = getattr(self.listener, "_accept", None)

    def _accept(self):
        """Accepts one connection (None when there is none); the socket is blocking."""
        accept_fd = self._accept_fd
        if accept_fd is None:
            conn, _ = self.listener.accept()
        else:
            fd, _ = accept_fd()
            try:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
            except BaseException:
                os.close(fd)
                raise
        if conn.gettimeout() is not None:  # only when socket.setdefaulttimeout() was called
            conn.setblocking(True)
        return conn

    def next_connection(self):
        """Blocks until a new connection is accepted or a parked one has data; None to re-check."""
        if self._solo and not self.parked:
            # Nothing parked: accept() is the only thing to wait for (no epoll_wait first).
            try:
                return self._accept()
            except InterruptedError:
                return None
            except OSError as exc:  # EINVAL once shutdown() has shut the listener down
                if not self.stopping:
                    logger.error("accept() failed: %s", exc)
                    time.sleep(0.1)
                return None
        try:
            events = self.poller.poll(1.0, 1)
        except InterruptedError:
            return None
        lfd = self.listener.fileno()
        for fd, _ in events:
            if fd == lfd:
                try:
                    conn = self._accept()
                except (BlockingIOError, InterruptedError):
                    conn = None
                except OSError as exc:
                    if not self.stopping:
                        logger.error("accept() failed: %s", exc)
                        time.sleep(0.1)
                    conn = None
                if self._listener_oneshot and not self.stopping:
                    self.poller.modify(lfd, _ONESHOT_IN)
                return conn
            if fd == self._stop_r:
                return None
            with self._parked_lock:
                conn = self.parked.pop(fd, None)
            if conn is not None:
                # The fd stays registered but disarmed (EPOLLONESHOT fired): park() re-arms it
                # with one EPOLL_CTL_MOD, and close() drops it from the epoll set.
                return conn
        return None

    def park(self, conn):
        fd = conn.fileno()
        with self._parked_lock:
            self.parked[fd] = conn
        registered = fd in self._in_poller
        try:
            try:
                if registered:
                    self.poller.modify(fd, _ONESHOT_IN)
                else:
                    self.poller.register(fd, _ONESHOT_IN)
            except FileNotFoundError:  # not in the set after all (fd number reused)
                self.poller.register(fd, _ONESHOT_IN)
            except FileExistsError:  # already in the set
                self.poller.modify(fd, _ONESHOT_IN)
            self._in_poller.add(fd)
        except OSError:
            with self._parked_lock:
                self.parked.pop(fd, None)
            self.close_connection(conn)

    def close_connection(self, conn):
        """Closes a served or parked connection (closing also removes it from the epoll set)."""
        try:
            self._in_poller.discard(conn.fileno())
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass

    def _write_ready_file(self, log_failure=True):
        """Writes the ready file; False when that failed (the serve loop retries every second:
        a runtime without its ready file is never used, e.g. after a full disk)."""
        path = self.cfg.ready_path
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write("ready")
            os.replace(tmp, path)
            logger.info("Runtime ready: %s", path)
            return True
        except OSError as exc:
            if log_failure:
                logger.error("Failed to create ready file %s: %s (retrying every second)", path,
                             exc)
            return False

    def _remove_files(self):
        for path in (self.cfg.ready_path, self.cfg.socket_path):
            try:
                os.unlink(path)
            except OSError:
                pass

    def _on_signal(self, signum, _frame):
        self._signals += 1
        if self._signals > 1:
            # A second signal while draining: give up on the in-flight work.
            try:
                logger.warning("Second signal %d while draining: exiting now", signum)
            except Exception:
                pass
            self._remove_files()
            os._exit(EXIT_CONFIG_ERROR)
        self.stopping = True

    def _watchdog(self):
        timeout = self.cfg.timeout
        interval = min(0.1, max(0.005, timeout / 20.0))
        workers = self.workers
        monotonic = time.monotonic
        while True:
            time.sleep(interval)
            now = monotonic()
            for w in workers:
                deadline = w.deadline
                if deadline and now > deadline:
                    self._handler_timeout(w, now)

    def _handler_timeout(self, worker, now):
        try:
            # Written straight to fd 2: a logging handler lock held by a stuck thread must not
            # keep the process alive.
            record = logger.makeRecord(
                logger.name, logging.ERROR, __file__, 0,
                "Handler timeout: handler %s has been running for %.3fs, past "
                "ASYA_RUNTIME_TIMEOUT=%s; exiting with code %d (handler timeout) so the supervisor "
                "restarts the runtime; no response is sent for the timed-out message",
                (self.label, now - worker.started, format_duration(self.cfg.timeout),
                 EXIT_HANDLER_TIMEOUT), None)
            os.write(2, (_LOG_FORMATTER.format(record) + "\n").encode("utf-8", "replace"))
        finally:
            self._remove_files()
            os._exit(EXIT_HANDLER_TIMEOUT)

    def serve_forever(self):
        cfg = self.cfg
        self._bind()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            signal.set_wakeup_fd(self._wake_w)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        except ValueError:
            logger.debug("Not in the main thread: signal handlers not installed")
        self._setup_poller()
        self.workers = [_Worker(self, i) for i in range(self.concurrency)]
        for w in self.workers:
            w.thread.start()
        if cfg.timeout > 0:
            threading.Thread(target=self._watchdog, name="asya-watchdog", daemon=True).start()
        ready = self._write_ready_file()

        # The main thread only waits for SIGTERM/SIGINT (the handler sets self.stopping and the
        # wakeup fd makes select() return at once), and retries a ready file that failed.
        while not self.stopping:
            try:
                readable, _, _ = select.select([self._wake_r], [], [], 1.0)
                if readable:
                    os.read(self._wake_r, 512)
            except InterruptedError:
                pass
            if not ready and not self.stopping:
                ready = self._write_ready_file(log_failure=False)
        return self.shutdown()

    def shutdown(self):
        logger.info("Shutting down: no longer accepting connections; letting in-flight requests finish")
        self.stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._remove_files()
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        with self._parked_lock:
            parked = list(self.parked.values())
            self.parked.clear()
        for conn in parked:
            try:
                conn.close()
            except OSError:
                pass
        for w in self.workers:
            conn = w.conn
            if conn is not None and w.idle:
                try:
                    conn.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
        for w in self.workers:
            w.thread.join()
        try:
            self.listener.close()
        except OSError:
            pass
        if self.loop_thread is not None:
            self.loop_thread.stop()
        logger.info("Shutdown complete")
        return EXIT_OK


# --------------------------------------------------------------------------------------------
# Entry point

_LOG_FORMATTER = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")


def _setup_logging(level):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LOG_FORMATTER)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logger.setLevel(level)


def main(env=None):
    """Run the runtime until SIGTERM/SIGINT; returns the process exit code."""
    if env is None:
        env = os.environ
    try:
        sys.stderr.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    level_name = (env.get("ASYA_LOG_LEVEL") or "INFO").strip().upper()
    level = logging.getLevelName("WARNING" if level_name == "WARN" else level_name)
    _setup_logging(level if isinstance(level, int) else logging.INFO)
    try:
        cfg = Config(env)
    except ConfigError as exc:
        logger.critical("FATAL: %s", exc)
        return EXIT_CONFIG_ERROR
    if not isinstance(level, int):
        logger.warning("Unknown ASYA_LOG_LEVEL=%r, using INFO", env.get("ASYA_LOG_LEVEL"))
    if cfg.validation_raw is not None and cfg.validation_raw.lower() not in ("true", "false"):
        logger.warning("ASYA_ENABLE_VALIDATION=%r is not 'true': validation is disabled",
                       cfg.validation_raw)
    logger.info("Asya runtime starting: python %s, handler=%s, mode=%s, validation=%s, "
                "socket=%s, timeout=%s, max_message_bytes=%d",
                sys.version.split()[0], cfg.handler, cfg.mode, cfg.validate, cfg.socket_path,
                format_duration(cfg.timeout) if cfg.timeout > 0 else "none", cfg.max_bytes)

    # Handler modules may `import asya_runtime` (e.g. for current_headers()); when this file runs
    # as a script, make that import return this very module rather than a second copy.
    this = sys.modules.get(__name__)
    if this is not None:
        sys.modules.setdefault("asya_runtime", this)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)

    try:
        handler, is_async = load_handler(cfg.handler)
    except HandlerLoadError as exc:
        logger.critical("FATAL: failed to load handler: %s", exc)
        return EXIT_CONFIG_ERROR
    try:
        runtime = Runtime(cfg, handler, is_async)
        logger.info("Handler is %s; serving up to %d connection(s) concurrently",
                    "async (one asyncio event loop)" if is_async else "sync", runtime.concurrency)
        return runtime.serve_forever()
    except ConfigError as exc:
        logger.critical("FATAL: %s", exc)
        return EXIT_CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
