"""Tests of src/runtime/python/asya_runtime.py: the real runtime runs as a subprocess and is
driven over its Unix socket with the sidecar framing.

Run from the repository root:
    python3 -m unittest discover -s tests/python -t tests/python
    python3 -m unittest tests/python/test_runtime.py
    python3 tests/python/test_runtime.py
"""

import json
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runtime_harness import (RuntimeProcess, envelope, frame, recv_frame,  # noqa: E402
                             to_bytes)


def err_of(resp):
    """Assert ``resp`` is a single error element and return (code, details)."""
    assert isinstance(resp, list) and len(resp) == 1, resp
    assert "error" in resp[0], resp
    return resp[0]["error"], resp[0].get("details", {})


def parallel(fn, args_list):
    """Run fn(*args) in threads; return (results in order, elapsed seconds)."""
    results = [None] * len(args_list)
    errors = []

    def run(i, args):
        try:
            results[i] = fn(*args)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    return results, elapsed


class _SharedRuntime(unittest.TestCase):
    """One runtime per test class (starting one costs ~0.1 s)."""
    HANDLER = "h_payload.dispatch"
    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.rt = RuntimeProcess(cls.HANDLER, **cls.ENV)

    @classmethod
    def tearDownClass(cls):
        cls.rt.close()

    def tearDown(self):
        # Every test must leave the shared runtime alive.
        self.assertIsNone(self.rt.proc.poll(), self.rt.stderr())


# =============================================================================================
# Payload mode (default)

class PayloadModeTest(_SharedRuntime):

    def test_ready_file_and_default_socket_mode(self):
        with open(self.rt.ready_path) as f:
            self.assertEqual(f.read(), "ready")
        st = os.stat(self.rt.socket_path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)

    def test_echo_advances_current_and_copies_route(self):
        env = envelope({"x": 1}, current=1, parent_id="p-0")
        env["route"]["metadata"] = {"trace": "abc"}
        env["route"]["extra_key"] = [1, 2]
        resp = self.rt.call(env)
        self.assertEqual(resp, [{"payload": {"x": 1},
                                 "route": {"actors": ["a", "b", "c"], "current": 2,
                                           "metadata": {"trace": "abc"}, "extra_key": [1, 2]}}])

    def test_string_and_number_results_are_one_output(self):  # item 34
        for value in ("hello", 42, 3.5, True, {"k": "v"}):
            resp = self.rt.call(envelope({"op": "return", "value": value}))
            self.assertEqual(len(resp), 1)
            self.assertEqual(resp[0]["payload"], value)
            self.assertEqual(resp[0]["route"]["current"], 1)

    def test_none_and_empty_list_are_zero_outputs(self):  # item 34
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": None})), [])
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": []})), [])

    def test_list_and_tuple_fan_out(self):
        resp = self.rt.call(envelope({"op": "return", "value": [1, "two", None, {"x": 3}]}))
        self.assertEqual([r["payload"] for r in resp], [1, "two", None, {"x": 3}])
        self.assertTrue(all(r["route"]["current"] == 1 for r in resp))
        resp = self.rt.call(envelope({"op": "tuple", "values": [7, 8]}))
        self.assertEqual([r["payload"] for r in resp], [7, 8])
        resp = self.rt.call(envelope({"op": "return", "value": [None]}))
        self.assertEqual(resp, [{"payload": None, "route": {"actors": ["a", "b", "c"], "current": 1}}])

    def test_missing_current_defaults_to_zero(self):  # item 35
        resp = self.rt.call({"payload": 1, "route": {"actors": ["a", "b"]}})
        self.assertEqual(resp[0]["route"], {"actors": ["a", "b"], "current": 1})

    def test_current_equal_to_length_is_accepted(self):
        resp = self.rt.call(envelope("x", actors=["a", "b"], current=2))
        self.assertEqual(resp[0]["route"]["current"], 3)

    def test_input_validation_messages(self):  # items 35, 36
        cases = [
            ({"route": {"actors": ["a"]}}, "Missing required field 'payload' in envelope"),
            ({"payload": 1}, "Missing required field 'route' in envelope"),
            ({"payload": 1, "route": ["a"]}, "Field 'route' must be a dict"),
            ({"payload": 1, "route": {"current": 0}}, "Missing required field 'actors' in route"),
            ({"payload": 1, "route": {"actors": "a"}}, "Field 'route.actors' must be a list"),
            ({"payload": 1, "route": {"actors": ["a"], "current": "0"}},
             "Field 'route.current' must be an integer"),
            ({"payload": 1, "route": {"actors": ["a"], "current": 1.5}},
             "Field 'route.current' must be an integer"),
            ({"payload": 1, "route": {"actors": [], "current": 0}},
             "Field 'route.actors' cannot be empty"),
            ({"payload": 1, "route": {"actors": ["a", "b"], "current": -1}},
             "Invalid route.current=-1: out of bounds for actors of length 2"),
            ({"payload": 1, "route": {"actors": ["a", "b"], "current": 10}},
             "Invalid route.current=10: out of bounds for actors of length 2"),
            ({"payload": 1, "route": {"actors": ["a"]}, "headers": ["h"]},
             "Field 'headers' must be a dict"),
            ({"payload": 1, "route": {"actors": ["a"]}, "id": 5}, "Field 'id' must be a string"),
            ([{"payload": 1}], "Missing required field 'payload' in envelope"),
        ]
        for body, message in cases:
            with self.subTest(body=body):
                code, details = err_of(self.rt.call(body))
                self.assertEqual(code, "msg_parsing_error")
                self.assertEqual(details["message"], message)
                self.assertEqual(details["type"], "ValueError")
                self.assertIn("Traceback", details["traceback"])

    def test_non_object_input_is_a_parsing_error_not_a_dropped_connection(self):
        for body in (b"5", b"null", b'"a string"', b"true", b"1.5"):
            with self.subTest(body=body):
                code, details = err_of(self.rt.call(body))
                self.assertEqual(code, "msg_parsing_error")
                self.assertIn("must be a JSON object", details["message"])

    def test_invalid_json_utf8_empty_frame_and_nan_input(self):  # items 40, 42
        for body in (b"{not json", b'{"payload": 1', b"\xff\xfe\x00garbage", b'{"payload":"\xc3\x28"}',
                     b"", b'{"payload": NaN, "route": {"actors": ["a"]}}',
                     b'{"payload": 1, "route": {"actors": ["a"]}} trailing'):
            with self.subTest(body=body):
                code, details = err_of(self.rt.call(body))
                self.assertEqual(code, "msg_parsing_error")
                self.assertTrue(details["message"])
                self.assertIn(details["type"], ("JSONDecodeError", "UnicodeDecodeError", "ValueError"))

    def test_absurdly_deep_nesting_is_a_parsing_error(self):
        body = b'{"payload": ' + b"[" * 100000 + b"]" * 100000 + b', "route": {"actors": ["a"]}}'
        code, details = err_of(self.rt.call(body))
        self.assertEqual((code, details["type"]), ("msg_parsing_error", "RecursionError"))

    def test_handler_exceptions_are_processing_errors(self):  # item 42
        for typ in ("ValueError", "RuntimeError", "KeyError", "MemoryError"):
            with self.subTest(type=typ):
                code, details = err_of(self.rt.call(envelope({"op": "raise", "type": typ,
                                                              "msg": "bad thing 42"})))
                self.assertEqual(code, "processing_error")
                self.assertEqual(details["type"], typ)
                self.assertIn("bad thing 42", details["message"])
                self.assertIn("h_payload.py", details["traceback"])
                self.assertEqual(sorted(details), ["message", "traceback", "type"])

    def test_handler_calling_sys_exit_does_not_kill_the_runtime(self):
        code, details = err_of(self.rt.call(envelope({"op": "sys_exit"})))
        self.assertEqual(code, "processing_error")
        self.assertEqual(details["type"], "SystemExit")
        self.assertEqual(self.rt.call(envelope(1))[0]["payload"], 1)

    def test_non_finite_and_unserialisable_outputs(self):
        for op, needle in (("nan", "not JSON compliant"), ("inf", "not JSON compliant"),
                           ("set", "not JSON serializable"),
                           ("circular", "Circular reference detected")):
            with self.subTest(op=op):
                raw = self.rt.call_raw(envelope({"op": op}))
                self.assertIsNotNone(raw)
                self.assertNotIn(b"NaN", raw)
                self.assertNotIn(b"Infinity", raw)
                code, details = err_of(json.loads(raw))
                self.assertEqual(code, "processing_error")
                self.assertIn(needle, details["message"])
                self.assertIn("h_payload.dispatch", details["message"])
        # A failed encoding leaves nothing behind: the same worker encodes the next answer.
        for _ in range(3):
            self.assertEqual(self.rt.call(envelope({"list": [1, 2, {"k": [3]}]}))[0]["payload"],
                             {"list": [1, 2, {"k": [3]}]})

    def test_headers_echoed_single_and_fan_out(self):  # item 46
        headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                   "x-asya-attempt": 1}
        resp = self.rt.call(envelope({"v": 1}, headers=headers))
        self.assertEqual(resp[0]["headers"], headers)
        resp = self.rt.call(envelope({"op": "return", "value": [1, 2, 3]}, headers=headers))
        self.assertEqual([r["headers"] for r in resp], [headers] * 3)
        resp = self.rt.call(envelope({"v": 1}))
        self.assertNotIn("headers", resp[0])
        code, details = err_of(self.rt.call(envelope(1, headers="x-asya-attempt=1")))
        self.assertEqual((code, details["message"]), ("msg_parsing_error", "Field 'headers' must be a dict"))

    def test_headers_visible_to_payload_handler(self):
        resp = self.rt.call(envelope({"op": "headers"}, headers={"x-asya-attempt": 3, "k": "v"}))
        self.assertEqual(resp[0]["payload"], {"headers": {"x-asya-attempt": 3, "k": "v"}, "attempt": 3})
        resp = self.rt.call(envelope({"op": "headers"}))
        self.assertEqual(resp[0]["payload"], {"headers": {}, "attempt": 1})

    def test_unicode_round_trip_is_raw_utf8(self):  # item 45
        payload = {"zh": "\u4e2d\u6587\u6d4b\u8bd5", "ja": "\u65e5\u672c\u8a9e", "emoji": "\U0001f680\U0001f525",
                   "mixed": "caf\u00e9 \u00fc\u00f1\u00ee"}
        raw = self.rt.call_raw(envelope(payload))
        self.assertIn("\u4e2d\u6587\u6d4b\u8bd5".encode("utf-8"), raw)  # not \\u escapes
        self.assertIn("\U0001f680".encode("utf-8"), raw)
        self.assertEqual(json.loads(raw)[0]["payload"], payload)

    def test_lone_surrogate_escape_still_gives_valid_utf8(self):
        raw = self.rt.call_raw(b'{"payload": "a\\ud800b", "route": {"actors": ["a"]}}')
        raw.decode("utf-8")  # strict: must not raise
        self.assertEqual(json.loads(raw)[0]["payload"], "a\ud800b")

    def test_odd_payloads_round_trip(self):  # item 45
        nested = "leaf"
        for i in range(50):
            nested = {"level": i, "child": nested}
        for payload in (None, {}, [], nested, 'quotes " and \\ backslash\nnewline\ttab',
                        {"i": 1, "f": 1.25, "b": False, "n": None, "s": "", "big": 2 ** 62, "neg": -7}):
            with self.subTest(payload=str(payload)[:40]):
                resp = self.rt.call(envelope({"op": "return", "value": payload} if isinstance(payload, list)
                                             else payload))
                expect = [] if payload in ([], None) else [payload]  # None/[] => zero outputs
                self.assertEqual([r["payload"] for r in resp], expect)

    def test_null_payload(self):  # item 45
        resp = self.rt.call(envelope(None))
        self.assertEqual(resp, [])  # handler echoes None => zero outputs
        resp = self.rt.call(envelope({"op": "return", "value": [None]}))
        self.assertEqual(resp[0]["payload"], None)
        raw = self.rt.call_raw(envelope({"op": "return", "value": [None]}))
        self.assertIn(b'"payload":null', raw)

    def test_large_payloads(self):  # item 39
        for size in (10 << 10, 100 << 10, 500 << 10, 1 << 20, 5 << 20, 10 << 20):
            with self.subTest(size=size):
                payload = {"data": "x" * size}
                resp = self.rt.call(envelope(payload))
                self.assertEqual(len(resp[0]["payload"]["data"]), size)
        resp = self.rt.call(envelope({"op": "big", "n": 1 << 20}))
        self.assertEqual(len(resp[0]["payload"]), 1 << 20)

    def test_several_frames_on_one_connection(self):
        with self.rt.connect() as s:
            for i in range(20):
                resp = self.rt.call(envelope({"i": i}), sock=s)
                self.assertEqual(resp[0]["payload"], {"i": i})

    def test_pipelined_frames_in_one_write(self):
        data = b"".join(frame(to_bytes(envelope({"i": i}))) for i in range(5))
        with self.rt.connect() as s:
            s.sendall(data)
            out = [json.loads(recv_frame(s))[0]["payload"]["i"] for _ in range(5)]
        self.assertEqual(out, [0, 1, 2, 3, 4])

    def test_frame_split_across_writes(self):
        body = to_bytes(envelope({"split": True}))
        data = frame(body)
        with self.rt.connect() as s:
            for chunk in (data[:2], data[2:7], data[7:]):
                s.sendall(chunk)
                time.sleep(0.02)
            self.assertEqual(json.loads(recv_frame(s))[0]["payload"], {"split": True})

    def test_one_connection_per_message(self):
        for i in range(50):
            self.assertEqual(self.rt.call(envelope(i))[0]["payload"], i)

    def test_partial_frames_get_connection_error(self):  # item 40
        with self.rt.connect() as s:
            s.sendall(b"\x00\x00")
            s.shutdown(socket.SHUT_WR)
            code, details = err_of(json.loads(recv_frame(s)))
            self.assertEqual(code, "connection_error")
            self.assertIn("2 of 4", details["message"])
        with self.rt.connect() as s:
            s.sendall(struct.pack(">I", 100) + b"x" * 10)
            s.shutdown(socket.SHUT_WR)
            code, details = err_of(json.loads(recv_frame(s)))
            self.assertEqual(code, "connection_error")
            self.assertIn("10 of 100", details["message"])
        with self.rt.connect() as s:  # peer fully gone: nothing to answer, runtime survives
            s.sendall(struct.pack(">I", 100) + b"x" * 10)
        time.sleep(0.1)
        self.assertEqual(self.rt.call(envelope("still alive"))[0]["payload"], "still alive")
        self.assertIn("connection_error", self.rt.stderr())

    def test_readiness_probe_connection_is_not_an_error(self):
        before = self.rt.stderr().count("connection_error")
        for _ in range(3):
            s = self.rt.connect()
            s.close()
        self.assertEqual(self.rt.call(envelope(1))[0]["payload"], 1)
        self.assertEqual(self.rt.stderr().count("connection_error"), before)

    def test_huge_declared_length_is_refused_without_allocating(self):
        with self.rt.connect() as s:
            s.sendall(struct.pack(">I", 0xFFFFFFFF) + b"{")
            code, details = err_of(json.loads(recv_frame(s)))
            self.assertEqual(code, "msg_parsing_error")
            self.assertIn("4294967295", details["message"])
            self.assertIn("ASYA_MAX_MESSAGE_BYTES=67108864", details["message"])
            self.assertIsNone(recv_frame(s))  # connection closed

    def test_payloads_are_not_logged_at_info(self):
        self.rt.call(envelope({"secret": "s3cr3t-payload-value"}))
        self.assertNotIn("s3cr3t-payload-value", self.rt.stderr())


# =============================================================================================
# Envelope mode

class EnvelopeModeTest(_SharedRuntime):
    HANDLER = "h_envelope.dispatch"
    ENV = {"ASYA_HANDLER_MODE": "ENVELOPE"}  # case-insensitive

    def call_err(self, env):
        code, details = err_of(self.rt.call(env))
        self.assertEqual(code, "processing_error")
        return details["message"]

    def test_handler_advances_current(self):
        resp = self.rt.call(envelope({"op": "advance"}, current=1, headers={"h": "1"}))
        self.assertEqual(resp, [{"payload": {"op": "advance"}, "id": "msg-1", "headers": {"h": "1"},
                                 "route": {"actors": ["a", "b", "c"], "current": 2}}])

    def test_handler_sees_rebuilt_envelope(self):  # item 36, rule 13
        env = envelope({"op": "inspect"}, parent_id="parent-7", headers={"x-asya-attempt": 2},
                       deadline="2030-01-01T00:00:00Z", unknown={"k": 1})
        seen = self.rt.call(env)[0]["payload"]
        self.assertEqual(seen, {"payload": {"op": "inspect"}, "id": "msg-1", "parent_id": "parent-7",
                                "headers": {"x-asya-attempt": 2},
                                "route": {"actors": ["a", "b", "c"], "current": 0}})

    def test_invalid_outputs(self):  # item 37
        route = {"actors": ["a", "b", "c"], "current": 1}
        cases = [
            ({"route": route}, "Invalid output envelope[0/1]: Missing required field 'payload' in envelope"),
            ({"payload": 1}, "Invalid output envelope[0/1]: Missing required field 'route' in envelope"),
            ({"payload": 1, "route": "a,b"}, "Invalid output envelope[0/1]: Field 'route' must be a dict"),
            ([{"payload": 1, "route": route}, {"payload": 2}],
             "Invalid output envelope[1/2]: Missing required field 'route' in envelope"),
            (5, "Invalid output envelope[0/1]: Output envelope must be a JSON object, got number"),
            ({"payload": 1, "route": {"actors": ["a", "b"], "current": 5}},
             "Invalid output envelope[0/1]: Invalid route.current=5: out of bounds for actors of length 2"),
            ({"payload": 1, "route": route, "id": 7},
             "Invalid output envelope[0/1]: Field 'id' must be a string"),
        ]
        for value, message in cases:
            with self.subTest(value=value):
                self.assertEqual(self.call_err(envelope({"op": "return", "value": value})), message)

    def test_route_rewrites_that_erase_processed_actors(self):  # item 37
        cases = [  # (input actors, input current, output actors)
            (["a", "b", "c"], 0, ["x", "a", "b"]),          # current actor changed / first erased
            (["a", "b", "c"], 2, ["a", "c", "d"]),          # middle erased
            (["a", "b", "c"], 1, ["renamed", "b", "c"]),    # processed actor renamed
            (["a", "b", "c"], 1, ["a"]),                   # truncated before current
        ]
        for actors, current, out_actors in cases:
            with self.subTest(out=out_actors):
                out = {"payload": 1, "route": {"actors": out_actors, "current": current + 1 if
                                               current + 1 <= len(out_actors) else len(out_actors)}}
                msg = self.call_err(envelope({"op": "return", "value": out}, actors=actors, current=current))
                self.assertTrue(msg.startswith("Invalid output envelope[0/1]: Route modification error: "
                                               "already-processed actors cannot be erased."), msg)
                self.assertIn(str(actors[:current + 1]), msg)

    def test_in_place_edits_are_validated_against_the_original(self):  # DESIGN precise behaviour 5
        msg = self.call_err(envelope({"op": "erase_inplace"}, current=1))
        self.assertIn("already-processed actors cannot be erased", msg)
        self.assertIn("['a', 'b']", msg)
        msg = self.call_err(envelope({"op": "rename_inplace"}, current=1))
        self.assertIn("already-processed actors cannot be erased", msg)

    def test_accepted_route_changes(self):  # item 38
        resp = self.rt.call(envelope({"op": "extend"}, actors=["a", "b"], current=0))
        self.assertEqual(resp[0]["route"], {"actors": ["a", "b", "x", "y"], "current": 1})
        replaced = {"payload": 1, "route": {"actors": ["a", "b", "z1", "z2"], "current": 2}}
        resp = self.rt.call(envelope({"op": "return", "value": replaced}, current=1))
        self.assertEqual(resp[0]["route"], replaced["route"])
        resp = self.rt.call(envelope({"op": "fanout", "n": 3}, current=1))
        self.assertEqual([r["payload"] for r in resp], [{"i": 0}, {"i": 1}, {"i": 2}])
        self.assertTrue(all(r["route"] == {"actors": ["a", "b", "c"], "current": 2} for r in resp))
        # Not validated (as the original): current unchanged or moved backwards
        same = {"payload": 1, "route": {"actors": ["a", "b", "c"], "current": 1}}
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": same}, current=1))[0]["route"],
                         same["route"])

    def test_output_missing_current_defaults_to_zero(self):
        out = {"payload": 1, "route": {"actors": ["a", "b"]}}
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": out}, actors=["a", "b"]))[0]["route"],
                         {"actors": ["a", "b"], "current": 0})

    def test_none_and_empty(self):
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": None})), [])
        self.assertEqual(self.rt.call(envelope({"op": "return", "value": []})), [])

    def test_headers_echoed(self):  # item 46
        resp = self.rt.call(envelope({"op": "advance"}, headers={"traceparent": "t", "x-asya-attempt": 1}))
        self.assertEqual(resp[0]["headers"], {"traceparent": "t", "x-asya-attempt": 1})

    def test_input_validation_still_applies(self):
        code, details = err_of(self.rt.call({"payload": 1}))
        self.assertEqual((code, details["message"]),
                         ("msg_parsing_error", "Missing required field 'route' in envelope"))

    def test_end_of_route_input(self):
        out = {"payload": 1, "route": {"actors": ["a", "b"], "current": 2}}
        resp = self.rt.call(envelope({"op": "return", "value": out}, actors=["a", "b"], current=2))
        self.assertEqual(resp[0]["route"], out["route"])


class EnvelopeNoValidationTest(_SharedRuntime):
    HANDLER = "h_envelope.end_handler"
    ENV = {"ASYA_HANDLER_MODE": "envelope", "ASYA_ENABLE_VALIDATION": "1"}  # only "true" enables

    def test_outputs_returned_verbatim(self):
        self.assertEqual(self.rt.call({"id": "x", "payload": 1}), [{}])

    def test_raw_json_reaches_the_handler(self):
        code, details = err_of(self.rt.call(b"5"))
        self.assertEqual(code, "processing_error")
        self.assertEqual(details["message"], "envelope without id")


class PayloadNoValidationTest(_SharedRuntime):
    ENV = {"ASYA_ENABLE_VALIDATION": "false"}

    def test_lenient_route(self):
        resp = self.rt.call({"payload": 1, "route": {"actors": [], "current": 7}})
        self.assertEqual(resp[0]["route"], {"actors": [], "current": 8})

    def test_minimum_still_required(self):
        for body, message in (({"route": {}}, "Missing required field 'payload' in envelope"),
                              ({"payload": 1}, "Field 'route' must be a dict"),
                              (b"[]", "Envelope must be a JSON object, got array")):
            with self.subTest(body=body):
                code, details = err_of(self.rt.call(body))
                self.assertEqual((code, details["message"]), ("msg_parsing_error", message))


# =============================================================================================
# Class handlers and handler resolution

class ClassHandlerTest(unittest.TestCase):

    def test_state_kept_instantiated_once(self):  # item 43
        with RuntimeProcess("h_class.Counter.process") as rt:
            counts = [rt.call(envelope(i))[0]["payload"] for i in range(3)]
            self.assertEqual(counts, [{"count": 1, "inits": 1}, {"count": 2, "inits": 1},
                                      {"count": 3, "inits": 1}])
            resp = rt.call(envelope({"op": "fanout", "n": 2}))
            self.assertEqual([r["payload"] for r in resp], [{"n": 4, "i": 0}, {"n": 4, "i": 1}])
            self.assertEqual(rt.call(envelope({"op": "none"})), [])
            code, details = err_of(rt.call(envelope({"op": "raise"})))
            self.assertEqual((code, details["type"]), ("processing_error", "RuntimeError"))
            self.assertIn("counter failed at 6", details["message"])

    def test_envelope_mode_class_without_validation(self):  # item 43
        with RuntimeProcess("h_class.Counter.envelope", ASYA_HANDLER_MODE="envelope",
                            ASYA_ENABLE_VALIDATION="false") as rt:
            for i in (1, 2):
                resp = rt.call(envelope("x"))
                self.assertEqual(resp[0]["payload"], {"count": i})
                self.assertEqual(resp[0]["route"]["current"], 1)

    def test_class_without_init_async_method_and_package_paths(self):
        with RuntimeProcess("h_class.NoInit.process") as rt:
            self.assertEqual(rt.call(envelope(5))[0]["payload"], {"noinit": 5})
        with RuntimeProcess("h_class.Counter.aprocess") as rt:
            self.assertEqual([rt.call(envelope(0))[0]["payload"]["count"] for _ in range(2)], [1, 2])
        with RuntimeProcess("hpkg.sub.func") as rt:  # longest importable prefix: hpkg.sub
            self.assertEqual(rt.call(envelope(1))[0]["payload"], {"from": "hpkg.sub.func", "payload": 1})
        with RuntimeProcess("hpkg.sub.Greeter.greet") as rt:
            self.assertEqual(rt.call(envelope("asya"))[0]["payload"], "hello asya")


class StartupFailureTest(unittest.TestCase):
    """Handler loading and configuration errors exit 1 with a clear message (items 43, 44)."""

    def assertStartupFails(self, handler, needles, code=1, **env):
        return self.assertAllFail([(handler, needles, env)], code)[0]

    def assertAllFail(self, cases, code=1):
        """Start every (handler, needles, env) case at once (quicker), then check each one."""
        procs = [RuntimeProcess(handler, wait=False, **env) for handler, _, env in cases]
        errs = []
        try:
            for (handler, needles, env), rt in zip(cases, procs):
                with self.subTest(handler=handler, env=env):
                    self.assertEqual(rt.wait_exit(30), code, rt.stderr())
                    err = rt.stderr()
                    errs.append(err)
                    for needle in needles:
                        self.assertIn(needle, err)
                    self.assertFalse(os.path.exists(rt.ready_path))
        finally:
            for rt in procs:
                rt.close()
        return errs

    def test_handler_loading_failures(self):
        cases = [
            (None, ["ASYA_HANDLER is not set"]),
            ("nodot", ["Invalid ASYA_HANDLER format", "nodot"]),
            ("h_payload.dis-patch", ["Invalid ASYA_HANDLER format"]),
            ("../etc.passwd", ["Invalid ASYA_HANDLER format"]),
            ("h_payload.func$", ["Invalid ASYA_HANDLER format"]),
            ("no_such_module_xyz.func", ["Could not import a module", "no_such_module_xyz"]),
            ("h_payload.no_such_attr", ["has no attribute", "no_such_attr"]),
            ("h_payload.NOT_CALLABLE", ["is not callable"]),
            ("h_payload.noop.extra.parts", ["Invalid attribute path"]),
            ("h_class.NeedsArg.process", ["parameter 'model_path' must have a default value"]),
            ("h_class.Counter.missing", ["does not have method 'missing'"]),
            ("h_class.Counter.not_callable", ["is not callable"]),
            ("h_class.RaisingInit.process", ["Failed to instantiate", "cannot load model weights",
                                             "Traceback"]),
            ("h_class.NoSuchClass.process", ["has no attribute", "NoSuchClass"]),
        ]
        self.assertAllFail([(handler, needles, {}) for handler, needles in cases])

    def test_import_time_crash_shows_traceback(self):
        err = self.assertStartupFails("h_crash_on_import.handler",
                                      ["Traceback", "boom at import time", "h_crash_on_import"])
        self.assertIn("RuntimeError", err)

    def test_missing_dependency_is_not_reported_as_missing_module(self):
        err = self.assertStartupFails("h_missing_dep.handler",
                                      ["definitely_not_installed_dependency_xyz", "Traceback"])
        self.assertNotIn("Could not import a module", err)

    def test_invalid_configuration(self):
        cases = [
            ({"ASYA_HANDLER_MODE": "bogus"}, ["Invalid ASYA_HANDLER_MODE"]),
            ({"ASYA_RUNTIME_TIMEOUT": "5 minutes"}, ["Invalid ASYA_RUNTIME_TIMEOUT"]),
            ({"ASYA_RUNTIME_TIMEOUT": "-5s"}, ["Invalid ASYA_RUNTIME_TIMEOUT"]),
            ({"ASYA_SOCKET_CHMOD": "rw-rw-rw-"}, ["Invalid ASYA_SOCKET_CHMOD"]),
            ({"ASYA_MAX_MESSAGE_BYTES": "64MB"}, ["Invalid ASYA_MAX_MESSAGE_BYTES"]),
            ({"ASYA_RUNTIME_CONCURRENCY": "0"}, ["Invalid ASYA_RUNTIME_CONCURRENCY"]),
        ]
        self.assertAllFail([("h_payload.noop", needles, env) for env, needles in cases])

    def test_socket_path_is_a_directory(self):  # item 41
        def make_dir(rt):
            os.mkdir(rt.socket_path)
        with RuntimeProcess("h_payload.noop", wait=False, pre_create=make_dir) as rt:
            self.assertEqual(rt.wait_exit(20), 1)
            self.assertIn("is a directory", rt.stderr())


class SocketSetupTest(unittest.TestCase):  # item 41

    def test_custom_chmod_both_spellings(self):
        for value, mode in (("0o600", 0o600), ("640", 0o640)):
            with self.subTest(value=value), RuntimeProcess("h_payload.noop", ASYA_SOCKET_CHMOD=value) as rt:
                self.assertEqual(stat.S_IMODE(os.stat(rt.socket_path).st_mode), mode)

    def test_empty_chmod_skips_chmod(self):
        with RuntimeProcess("h_payload.noop", umask=0o077, ASYA_SOCKET_CHMOD="") as rt:
            self.assertEqual(stat.S_IMODE(os.stat(rt.socket_path).st_mode), 0o700)

    def test_stale_file_is_replaced_and_custom_name(self):
        def stale(rt):
            with open(rt.socket_path, "w") as f:
                f.write("stale")
        with RuntimeProcess("h_payload.noop", pre_create=stale, ASYA_SOCKET_NAME="custom.sock") as rt:
            self.assertTrue(rt.socket_path.endswith("/custom.sock"))
            self.assertTrue(stat.S_ISSOCK(os.stat(rt.socket_path).st_mode))
            self.assertEqual(rt.call(envelope(9))[0]["payload"], 9)


    def test_ready_file_is_retried_until_it_can_be_written(self):
        # A full disk at start: the runtime keeps serving and writes the file once it can (a
        # runtime without it is never used: `asya up` stayed unready for good).
        def block(rt):
            os.makedirs(os.path.join(rt.ready_path, "x"))  # the rename fails, like ENOSPC
        with RuntimeProcess("h_payload.noop", wait=False, pre_create=block) as rt:
            deadline = time.time() + 15
            while not os.path.exists(rt.socket_path) and time.time() < deadline:
                time.sleep(0.05)
            self.assertTrue(os.path.isdir(rt.ready_path))
            os.rmdir(os.path.join(rt.ready_path, "x"))
            os.rmdir(rt.ready_path)
            deadline = time.time() + 15
            while not os.path.isfile(rt.ready_path) and time.time() < deadline:
                time.sleep(0.05)
            self.assertTrue(os.path.isfile(rt.ready_path))
            self.assertEqual(rt.call(envelope(9))[0]["payload"], 9)


# =============================================================================================
# Concurrency, async, limits, timeouts, shutdown

def _sleep_call(rt, seconds, headers=None):
    return rt.call(envelope({"op": "sleep", "s": seconds}, headers=headers) if headers else
                   envelope({"op": "sleep", "s": seconds}))


class ConcurrencyTest(unittest.TestCase):

    def test_sync_handler_with_n_threads(self):
        with RuntimeProcess("h_payload.dispatch", ASYA_RUNTIME_CONCURRENCY="4",
                            ASYA_RUNTIME_TIMEOUT="0") as rt:
            results, elapsed = parallel(lambda: _sleep_call(rt, 0.4), [()] * 4)
            self.assertLess(elapsed, 1.2, "4 x 0.4 s sleeps should overlap")
            threads = {r[0]["payload"]["thread"] for r in results}
            self.assertEqual(len(threads), 4)
            # per-thread headers are right under concurrency
            res, _ = parallel(lambda i: rt.call(envelope({"op": "headers", "s": 0.1},
                                                          headers={"x-asya-attempt": i})),
                              [(i,) for i in range(1, 5)])
            self.assertEqual([r[0]["payload"]["attempt"] for r in res], [1, 2, 3, 4])

    def test_default_concurrency_is_one_for_sync_handlers(self):
        with RuntimeProcess("h_payload.dispatch") as rt:
            _, elapsed = parallel(lambda: _sleep_call(rt, 0.3), [()] * 2)
            self.assertGreaterEqual(elapsed, 0.55)

    def test_idle_kept_connections_do_not_hold_the_only_worker(self):
        # A sidecar with concurrency > 1 keeps several connections open; with one runtime
        # thread, an idle kept connection must not block requests on the others.
        with RuntimeProcess("h_payload.dispatch") as rt:
            kept = [rt.connect() for _ in range(3)]
            try:
                for round_ in range(3):
                    for i, s in enumerate(kept):
                        s.settimeout(5.0)
                        resp = rt.call(envelope({"i": i, "r": round_}), sock=s)
                        self.assertEqual(resp[0]["payload"]["i"], i)
                # a fresh connection-per-message client is served while the kept ones idle
                self.assertEqual(rt.call(envelope({"n": 1}))[0]["payload"]["n"], 1)
            finally:
                for s in kept:
                    s.close()

    def test_async_handler_overlaps_20_messages_on_one_loop(self):
        with RuntimeProcess("h_payload.async_dispatch") as rt:  # async default concurrency
            results, elapsed = parallel(lambda: rt.call(envelope({"op": "sleep", "s": 0.5})), [()] * 20)
            self.assertLess(elapsed, 1.5, "20 x 0.5 s awaits should overlap")
            self.assertEqual(len({r[0]["payload"]["loop"] for r in results}), 1)
            self.assertEqual({r[0]["payload"]["thread"] for r in results}, {"asya-asyncio"})
            res, _ = parallel(lambda i: rt.call(envelope({"op": "headers", "s": 0.2}, headers={"n": i})),
                              [(i,) for i in range(10)])
            self.assertEqual([r[0]["payload"]["headers"] for r in res], [{"n": i} for i in range(10)])
            code, details = err_of(rt.call(envelope({"op": "raise", "msg": "async failure"})))
            self.assertEqual((code, details["type"], details["message"]),
                             ("processing_error", "RuntimeError", "async failure"))

    def test_sync_function_returning_a_coroutine(self):
        with RuntimeProcess("h_payload.returns_coroutine") as rt:
            self.assertEqual(rt.call(envelope({"op": "headers"}, headers={"a": 1}))[0]["payload"],
                             {"headers": {"a": 1}})


class LimitsTest(_SharedRuntime):
    ENV = {"ASYA_MAX_MESSAGE_BYTES": "1000"}

    def test_oversize_request_frame(self):
        with self.rt.connect() as s:
            s.sendall(struct.pack(">I", 5000) + b"x" * 100)
            code, details = err_of(json.loads(recv_frame(s)))
            self.assertEqual(code, "msg_parsing_error")
            self.assertIn("5000", details["message"])
            self.assertIn("ASYA_MAX_MESSAGE_BYTES=1000", details["message"])
            self.assertEqual(details["type"], "FrameTooLarge")
            self.assertIsNone(recv_frame(s))
        self.assertEqual(self.rt.call(envelope("small"))[0]["payload"], "small")

    def test_oversize_response(self):
        with self.rt.connect() as s:
            code, details = err_of(self.rt.call(envelope({"op": "big", "n": 2000}), sock=s))
            self.assertEqual(code, "processing_error")
            self.assertRegex(details["message"], r"^response of \d+ bytes exceeds ASYA_MAX_MESSAGE_BYTES=1000$")
            # the connection stays usable
            self.assertEqual(self.rt.call(envelope("ok"), sock=s)[0]["payload"], "ok")

    def test_error_frames_fit_the_limit(self):
        raw = self.rt.call_raw(envelope({"op": "raise", "msg": "m", "repeat": 3000}))
        self.assertLessEqual(len(raw), 1000)
        self.assertEqual(json.loads(raw)[0]["error"], "processing_error")


class TimeoutTest(unittest.TestCase):

    def test_handler_timeout_exits_3_without_answering(self):
        with RuntimeProcess("h_payload.dispatch", ASYA_RUNTIME_TIMEOUT="300ms") as rt:
            self.assertEqual(_sleep_call(rt, 0.05)[0]["payload"]["slept"], 0.05)
            t0 = time.monotonic()
            with rt.connect() as s:
                self.assertIsNone(rt.call_raw(envelope({"op": "sleep", "s": 10}), sock=s))
            self.assertEqual(rt.wait_exit(10), 3)
            self.assertLess(time.monotonic() - t0, 3.0)
            err = rt.stderr()
            self.assertIn("h_payload.dispatch", err)
            self.assertIn("ASYA_RUNTIME_TIMEOUT=300ms", err)
            self.assertIn("exiting with code 3", err)
            self.assertFalse(os.path.exists(rt.ready_path))
            self.assertFalse(os.path.exists(rt.socket_path))

    def test_async_handler_timeout(self):
        with RuntimeProcess("h_payload.async_dispatch", ASYA_RUNTIME_TIMEOUT="0.3") as rt:
            self.assertIsNone(rt.call_raw(envelope({"op": "sleep", "s": 10})))
            self.assertEqual(rt.wait_exit(10), 3)

    def test_zero_disables_the_deadline(self):
        with RuntimeProcess("h_payload.dispatch", ASYA_RUNTIME_TIMEOUT="0") as rt:
            self.assertEqual(_sleep_call(rt, 0.4)[0]["payload"]["slept"], 0.4)


class ShutdownTest(unittest.TestCase):

    def assertCleanExit(self, rt, within=5.0):
        t0 = time.monotonic()
        self.assertEqual(rt.wait_exit(within + 5), 0, rt.stderr())
        self.assertLess(time.monotonic() - t0, within)
        self.assertFalse(os.path.exists(rt.socket_path))
        self.assertFalse(os.path.exists(rt.ready_path))

    def test_sigterm_idle(self):
        with RuntimeProcess("h_payload.noop") as rt:
            rt.signal(signal.SIGTERM)
            self.assertCleanExit(rt, 2.0)

    def test_sigint_idle(self):
        with RuntimeProcess("h_payload.noop", ASYA_RUNTIME_CONCURRENCY="3") as rt:
            rt.signal(signal.SIGINT)
            self.assertCleanExit(rt, 2.0)

    def test_sigterm_lets_in_flight_request_finish(self):
        with RuntimeProcess("h_payload.dispatch") as rt:
            s = rt.connect()
            s.sendall(frame(to_bytes(envelope({"op": "sleep", "s": 0.6}))))
            time.sleep(0.2)
            rt.signal(signal.SIGTERM)
            time.sleep(0.1)
            self.assertFalse(os.path.exists(rt.ready_path))  # not ready any more
            with self.assertRaises(OSError):
                rt.connect()
            resp = json.loads(recv_frame(s))
            self.assertEqual(resp[0]["payload"]["slept"], 0.6)
            self.assertIsNone(recv_frame(s))  # closed after the in-flight response
            s.close()
            self.assertCleanExit(rt)

    def test_sigterm_with_an_idle_persistent_connection_and_one_worker(self):
        # The only worker waits for the kept connection's next request and for new connections
        # at once; SIGTERM must end that wait, close the connection and exit.
        with RuntimeProcess("h_payload.noop") as rt:
            c = rt.connect()
            self.assertEqual(rt.call(envelope(1), sock=c)[0]["payload"], 1)
            time.sleep(0.1)
            rt.signal(signal.SIGTERM)
            self.assertCleanExit(rt, 2.0)
            self.assertIsNone(recv_frame(c))
            c.close()

    def test_sigterm_with_idle_persistent_connections(self):
        with RuntimeProcess("h_payload.noop", ASYA_RUNTIME_CONCURRENCY="2") as rt:
            conns = [rt.connect() for _ in range(2)]
            for c in conns:
                self.assertEqual(rt.call(envelope(1), sock=c)[0]["payload"], 1)
            rt.signal(signal.SIGTERM)
            self.assertCleanExit(rt, 2.0)
            for c in conns:
                self.assertIsNone(recv_frame(c))
                c.close()


# =============================================================================================
# In-process unit tests of pure helpers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "src", "runtime", "python"))
import asya_runtime  # noqa: E402


class HelpersTest(unittest.TestCase):

    def test_parse_duration(self):
        cases = {"300ms": 0.3, "30s": 30, "5m": 300, "1h": 3600, "1m30s": 90, "1h2m3s": 3723,
                 "1.5s": 1.5, "10": 10, "2.5": 2.5, "0": 0, "500us": 0.0005, "100ns": 1e-7, "+3s": 3}
        for text, seconds in cases.items():
            with self.subTest(text=text):
                self.assertAlmostEqual(asya_runtime.parse_duration(text), seconds)
        for bad in ("", "5 m", "5x", "m5", "-1s", "1m-3s", "abc", "1.2.3s"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                asya_runtime.parse_duration(bad)

    def test_accessors_outside_a_handler(self):
        self.assertEqual(asya_runtime.current_headers(), {})
        self.assertEqual(asya_runtime.current_attempt(), 1)

    def test_worker_encoder_matches_the_shared_one_and_recovers_from_errors(self):
        to_utf8 = asya_runtime._make_utf8_encoder()
        for obj in ([{"payload": {"t": "caf\u00e9 \u2603", "n": [1, -2.5, None, True]}, "route": {}}],
                    "plain", 3, ["\ud800"], [{"e": "\"\\\n\t"}]):
            with self.subTest(obj=obj):
                self.assertEqual(to_utf8(obj), asya_runtime._to_utf8(obj))
        inner = [1, 2]
        inner.append({"back": inner})
        with self.assertRaisesRegex(ValueError, "Circular reference"):
            to_utf8([inner])
        with self.assertRaises(TypeError):
            to_utf8([inner[:2], {1, 2}])
        inner.pop()  # the same objects, no longer circular: nothing stale remains marked
        self.assertEqual(to_utf8([inner, {"l": inner}]), b'[[1,2],{"l":[1,2]}]')

    def test_exit_codes(self):
        self.assertEqual((asya_runtime.EXIT_OK, asya_runtime.EXIT_CONFIG_ERROR,
                          asya_runtime.EXIT_HANDLER_TIMEOUT), (0, 1, 3))


if __name__ == "__main__":
    unittest.main()
