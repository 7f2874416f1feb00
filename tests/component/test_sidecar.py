"""Component tests: real asya-sidecar + real runtime processes + real transport (see harness.py).

Every case asserts exact outcomes and that each input was settled exactly once: the input queue
ends with nothing ready or in flight, and exactly the expected messages reach the end queues.
"""

import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import sys

from harness import (ONESHOT_PY, QUEUE_TOOL, SIDECAR_BIN, TRANSPORT, WAIT, Mesh, envelope,
                     free_port)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def setUpModule():
    for path in (SIDECAR_BIN, QUEUE_TOOL):
        if not os.path.exists(path):
            raise RuntimeError("%s is not built (run make build first)" % path)


class MeshTest(unittest.TestCase):
    """One mesh per class; subclasses start the actors they need in setUpClass."""

    @classmethod
    def setUpClass(cls):
        cls.mesh = Mesh()
        cls.addClassCleanup(cls.mesh.close)  # also runs when a subclass's setUpClass fails

    # ---- helpers ----
    def happy(self, n):
        return self.mesh.collect(self.mesh.q(self.mesh.happy_end), n)

    def errors(self, n):
        return self.mesh.collect(self.mesh.q(self.mesh.error_end), n)

    def assert_settled(self, *actors, extra_queues=()):
        """Inputs fully acked; nothing more in the end queues (or in `extra_queues`)."""
        for a in actors:
            self.mesh.wait_drained(a.queue)
        for q in (self.mesh.q(self.mesh.happy_end), self.mesh.q(self.mesh.error_end)) + tuple(
                extra_queues):
            self.assertIsNone(self.mesh.get(q, wait=0.2), "unexpected extra message on " + q)
            ready, inflight = self.mesh.depth(q)
            self.assertEqual((ready, max(inflight, 0)), (0, 0), q)


class DispatchTests(MeshTest):
    """Payload-mode actors a, b, c running the `dispatch` handler (echo unless told otherwise)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        m = cls.mesh
        cls.a = m.actor("a", "component_handlers.dispatch")
        cls.b = m.actor("b", "component_handlers.dispatch")
        cls.c = m.actor("c", "component_handlers.dispatch")

    def route(self, *shorts):
        return [self.mesh.name(s) for s in shorts]

    def send(self, id_, payload, route=("a",), **kw):
        self.mesh.publish(self.a.queue if route[0] == "a" else self.mesh.q(self.mesh.name(route[0])),
                          envelope(id_, self.route(*route), 0, payload, **kw))

    def test_happy_path(self):
        self.send("hp-1", {"hello": "world"})
        [out] = self.happy(1)
        self.assertEqual(out["id"], "hp-1")
        self.assertEqual(out["payload"], {"hello": "world"})
        self.assertEqual(out["route"], {"actors": self.route("a"), "current": 1})
        self.assertEqual(out["headers"]["x-asya-hops"], 1)
        self.assert_settled(self.a)

    def test_three_hops_keep_headers_and_parent(self):
        self.send("3h-1", {"n": 1}, route=("a", "b", "c"), parent_id="p-9",
                  headers={"traceparent": TRACEPARENT, "tenant": "t1"},
                  deadline="2999-01-01T00:00:00Z")
        [out] = self.happy(1)
        self.assertEqual(out["id"], "3h-1")
        self.assertEqual(out["parent_id"], "p-9")
        self.assertEqual(out["route"]["current"], 3)
        self.assertEqual(out["payload"], {"n": 1})
        self.assertEqual(out["headers"]["traceparent"], TRACEPARENT)
        self.assertEqual(out["headers"]["tenant"], "t1")
        self.assertEqual(out["headers"]["x-asya-hops"], 3)
        self.assertEqual(out["deadline"], "2999-01-01T00:00:00Z")
        self.assert_settled(self.a, self.b, self.c)

    def test_headers_reach_error_end_after_hops(self):
        self.send("he-1", {"op": "raise", "msg": "third hop fails"}, route=("a", "b"),
                  headers={"traceparent": TRACEPARENT})
        # a and b echo the op payload forward; b is the one that raises.
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["error"], "processing_error")
        self.assertEqual(err["headers"]["traceparent"], TRACEPARENT)
        self.assertEqual(err["route"]["actors"], self.route("a", "b"))
        self.assert_settled(self.a, self.b)

    def test_fanout_zero_one_five(self):
        self.send("f0", {"op": "fanout", "n": 0}, route=("a", "b"))
        [orig] = self.happy(1)  # empty result: the original envelope goes to happy-end
        self.assertEqual(orig["id"], "f0")
        self.assertEqual(orig["route"]["current"], 0)
        self.assertEqual(orig["payload"], {"op": "fanout", "n": 0})

        self.send("f1", {"op": "fanout", "n": 1}, route=("a", "b"))
        [one] = self.happy(1)
        self.assertEqual(one["id"], "f1")
        self.assertNotIn("parent_id", one)
        self.assertEqual(one["payload"], {"i": 0})
        self.assertEqual(one["route"]["current"], 2)

        self.send("f5", {"op": "fanout", "n": 5}, route=("a", "b"))
        outs = sorted(self.happy(5), key=lambda e: e["payload"]["i"])
        self.assertEqual([e["id"] for e in outs], ["f5", "f5-1", "f5-2", "f5-3", "f5-4"])
        self.assertNotIn("parent_id", outs[0])
        self.assertEqual([e.get("parent_id") for e in outs[1:]], ["f5"] * 4)
        self.assertEqual([e["payload"]["i"] for e in outs], [0, 1, 2, 3, 4])
        self.assert_settled(self.a, self.b)

    def test_empty_result(self):
        self.send("none-1", {"op": "none"}, route=("a", "b"), headers={"k": "v"})
        [out] = self.happy(1)
        self.assertEqual(out["id"], "none-1")
        self.assertEqual(out["route"], {"actors": self.route("a", "b"), "current": 0})
        self.assertEqual(out["payload"], {"op": "none"})
        self.assertEqual(out["headers"]["k"], "v")
        self.assert_settled(self.a, self.b)

    def test_handler_exception(self):
        self.send("ex-1", {"op": "raise", "msg": "kaput"}, parent_id="pp")
        [err] = self.errors(1)
        self.assertEqual(err["id"], "ex-1")
        self.assertEqual(err["parent_id"], "pp")
        p = err["payload"]
        self.assertEqual(p["error"], "processing_error")
        self.assertEqual(p["details"]["message"], "kaput")
        self.assertEqual(p["details"]["type"], "RuntimeError")
        self.assertIn("Traceback", p["details"]["traceback"])
        self.assertEqual(p["original_payload"], {"op": "raise", "msg": "kaput"})
        self.assertEqual(err["route"]["current"], 0)
        self.assert_settled(self.a)

    def test_memory_error(self):
        self.send("mem-1", {"op": "memory"})
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["details"]["type"], "MemoryError")
        self.assertEqual(err["payload"]["details"]["message"], "simulated out of memory")
        self.assert_settled(self.a)

    def test_unicode(self):
        payload = {"cjk": "漢字かなカナ한국어", "emoji": "😀🚀👩‍👩‍👧", "mixed": "é\u2028\u0000x"}
        self.send("uni-1", payload)
        [out] = self.happy(1)
        self.assertEqual(out["payload"], payload)
        self.assert_settled(self.a)

    @unittest.skipIf(TRANSPORT == "sqs", "SQS carries at most 256 KiB per message")
    def test_ten_megabyte_payload(self):
        blob = "x" * (10 * 1024 * 1024)
        self.send("big-1", {"blob": blob})
        [out] = self.happy(1)
        self.assertEqual(len(out["payload"]["blob"]), len(blob))
        self.assertEqual(out["payload"]["blob"], blob)
        self.assert_settled(self.a)

    def test_fifty_level_nesting(self):
        nested = {"leaf": 1}
        for i in range(50):
            nested = {"l%d" % i: nested}
        self.send("nest-1", nested)
        [out] = self.happy(1)
        self.assertEqual(out["payload"], nested)
        self.assert_settled(self.a)

    def test_null_payload(self):
        self.send("null-1", None)
        [out] = self.happy(1)
        self.assertIn("payload", out)
        self.assertIsNone(out["payload"])
        self.assert_settled(self.a)

    def test_invalid_json(self):
        self.mesh.publish(self.a.queue, b'{"id": "bad", "route": ')
        [err] = self.errors(1)
        self.assertEqual(err["id"], "")
        self.assertTrue(err["payload"]["error"].startswith("Failed to parse message: "),
                        err["payload"]["error"])
        self.assertNotIn("original_payload", err["payload"])
        self.assert_settled(self.a)

    def test_missing_id(self):
        self.mesh.publish(self.a.queue, {"route": {"actors": self.route("a"), "current": 0},
                                         "payload": 5})
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["error"], "Envelope missing required 'id' field")
        self.assertEqual(err["payload"]["original_payload"], 5)
        self.assert_settled(self.a)

    def test_route_mismatch(self):
        self.mesh.publish(self.a.queue, envelope("rm-1", self.route("b", "a"), 0, 1))
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["error"],
                         "Route mismatch: message routed to wrong actor (expected: %s, actual: %s)"
                         % (self.a.name, self.mesh.name("b")))
        self.assert_settled(self.a)

    def test_deadline_exceeded(self):
        self.send("dl-1", {"op": "raise"}, deadline="2001-01-01T00:00:00Z")
        [err] = self.errors(1)
        # The runtime was not called: a raising handler would have reported processing_error.
        self.assertEqual(err["payload"]["error"], "deadline exceeded")
        self.assertEqual(err["deadline"], "2001-01-01T00:00:00Z")
        self.assert_settled(self.a)


class RecoveryTests(MeshTest):
    """Runtime timeouts, crashes and restarts: never a lost, duplicated or stuck message."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        timeout = {"ASYA_RUNTIME_TIMEOUT": "1500ms"}
        cls.r = cls.mesh.actor("r", "component_handlers.dispatch", sidecar_env=timeout,
                               runtime_env=timeout)

    def send(self, id_, payload):
        self.mesh.publish(self.r.queue, envelope(id_, [self.r.name], 0, payload))

    def test_timeout_then_next_message_fine(self):
        restarts = self.r.runtime.restarts
        self.send("to-1", {"op": "sleep", "s": 6})
        [err] = self.errors(1)
        self.assertEqual(err["id"], "to-1")
        self.assertEqual(err["payload"]["error"], "Runtime timeout exceeded after 1.5s")
        self.assertEqual(err["payload"]["details"], {"type": "RuntimeTimeout",
                                                     "message": err["payload"]["error"]})
        self.send("to-2", {"after": "timeout"})
        [out] = self.happy(1)
        self.assertEqual(out["payload"], {"after": "timeout"})
        self.assertEqual(self.r.runtime.restarts, restarts + 1)
        self.assertEqual(self.r.runtime.exit_codes[-1], 3)  # runtime's handler-timeout exit
        self.assertIsNone(self.r.sidecar.poll(), "sidecar must survive a timeout")
        self.assert_settled(self.r)

    def test_runtime_killed_mid_message(self):
        restarts = self.r.runtime.restarts
        mark = self.mesh.mark_path("kill-1")
        self.send("kill-1", {"op": "sleep", "s": 1, "mark": mark})
        self.mesh.wait_in_handler(self.r.queue, mark)
        self.r.runtime.signal(signal.SIGKILL)
        [err] = self.errors(1)
        self.assertEqual(err["id"], "kill-1")
        self.assertTrue(err["payload"]["error"].startswith("failed to read response from runtime"),
                        err["payload"]["error"])
        self.assertEqual(err["payload"]["details"]["type"], "RuntimeCallError")
        self.send("kill-2", {"after": "kill"})
        [out] = self.happy(1)
        self.assertEqual(out["payload"], {"after": "kill"})
        self.assertEqual(self.r.runtime.restarts, restarts + 1)
        self.assert_settled(self.r)

    def test_runtime_restarted_between_messages(self):
        self.send("rs-1", {"n": 1})
        self.assertEqual(self.happy(1)[0]["payload"], {"n": 1})
        restarts = self.r.runtime.restarts
        self.r.runtime.signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while self.r.runtime.restarts == restarts:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        for i in range(3):
            self.send("rs-%d" % (i + 2), {"n": i + 2})
        outs = self.happy(3)
        self.assertEqual(sorted(o["payload"]["n"] for o in outs), [2, 3, 4])
        self.assert_settled(self.r)


class RetryTests(MeshTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.r = cls.mesh.actor("retry", "component_handlers.dispatch", sidecar_env={
            "ASYA_RETRY_MAX_ATTEMPTS": "3", "ASYA_RETRY_BACKOFF": "50ms",
            "ASYA_RETRY_MAX_BACKOFF": "200ms", "ASYA_RETRY_NON_RETRYABLE": "KeyError, ValueError"})

    def calls(self, path):
        with open(path) as f:
            return [json.loads(line) for line in f]

    def test_flaky_handler_succeeds_on_third_attempt(self):
        log = os.path.join(self.mesh.dir, "flaky.log")
        self.mesh.publish(self.r.queue, envelope("fl-1", [self.r.name], 0,
                                                 {"op": "flaky", "succeed_on": 3, "log": log}))
        [out] = self.happy(1)
        self.assertEqual(out["payload"], {"ok": 3})
        self.assertEqual(self.calls(log), [1, 2, 3])
        self.assertNotIn("x-asya-attempt", out.get("headers", {}))
        self.assert_settled(self.r)

    def test_exhausted_attempts_reach_error_end_with_history(self):
        log = os.path.join(self.mesh.dir, "always.log")
        self.mesh.publish(self.r.queue, envelope("fl-2", [self.r.name], 0,
                                                 {"op": "flaky", "succeed_on": 99, "log": log}))
        [err] = self.errors(1)
        self.assertEqual(self.calls(log), [1, 2, 3])
        attempts = err["payload"]["attempts"]
        self.assertEqual([a["attempt"] for a in attempts], [1, 2, 3])
        self.assertEqual(attempts[0]["message"], "flaky failure on attempt 1")
        self.assertEqual(err["payload"]["details"]["message"], "flaky failure on attempt 3")
        self.assert_settled(self.r)

    def test_non_retryable_goes_to_error_end_at_once(self):
        log = os.path.join(self.mesh.dir, "value.log")
        self.mesh.publish(self.r.queue, envelope("ve-1", [self.r.name], 0,
                                                 {"op": "value_error", "log": log}))
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["details"]["type"], "ValueError")
        self.assertEqual(len(self.calls(log)), 1)
        self.assert_settled(self.r)


class GuardTests(MeshTest):
    """Delivery limit (DLQ), hop limit, oversize messages."""

    def test_max_deliveries_dead_letters_without_calling_runtime(self):
        a = self.mesh.actor("dlq", "component_handlers.dispatch",
                            sidecar_env={"ASYA_MAX_DELIVERIES": "2"}, start_sidecar=False)
        dlq = a.queue + "-dlq"
        self.mesh.ensure_queue(dlq)
        self.mesh.publish(a.queue, envelope("dd-1", [a.name], 0, {"op": "raise"}))
        for _ in range(2):  # two deliveries that never end in an ack
            self.assertIsNotNone(self.mesh.get(a.queue, wait=5, ack=False))
        a.start_sidecar()
        dead = self.mesh.collect(dlq, 1)[0]
        self.assertEqual(dead["id"], "dd-1")
        self.assertEqual(dead["payload"], {"op": "raise"})
        if TRANSPORT == "sqlite":  # brokers count deliveries their own way (contract suite)
            self.assertEqual(dead["headers"]["x-asya-deliveries"], 3)
        else:
            self.assertGreaterEqual(dead["headers"]["x-asya-deliveries"], 3)
        self.assertIn("max deliveries exceeded", dead["headers"]["x-asya-dlq-reason"])
        self.assert_settled(a, extra_queues=(dlq,))

    def test_hop_limit_stops_a_routing_loop(self):
        a = self.mesh.actor("loop", "component_handlers.self_loop", mode="envelope",
                            sidecar_env={"ASYA_MAX_HOPS": "5"})
        self.mesh.publish(a.queue, envelope("loop-1", [a.name, "never"], 0, {"x": 1}))
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["error"], "hop limit exceeded")
        self.assertEqual(err["headers"]["x-asya-hops"], 5)
        self.assert_settled(a)

    def test_oversize_message(self):
        a = self.mesh.actor("small", "component_handlers.dispatch",
                            sidecar_env={"ASYA_MAX_MESSAGE_BYTES": "2048"})
        self.mesh.publish(a.queue, envelope("os-1", [a.name], 0, {"blob": "y" * 4096}))
        self.mesh.publish(a.queue, envelope("os-2", [a.name], 0, {"blob": "fits"}))
        [err] = self.errors(1)
        self.assertEqual(err["id"], "os-1")
        self.assertIn("exceeds ASYA_MAX_MESSAGE_BYTES=2048", err["payload"]["error"])
        self.assertNotIn("original_payload", err["payload"])
        [ok] = self.happy(1)
        self.assertEqual(ok["id"], "os-2")
        self.assert_settled(a)


class HandlerKindTests(MeshTest):
    """Envelope mode, class handlers, async handlers, and a one-connection-per-message runtime."""

    def test_envelope_mode_route_extension_accepted(self):
        a = self.mesh.actor("ext", "component_handlers.extend_route", mode="envelope")
        target = self.mesh.name("added")
        self.mesh.ensure_queue(self.mesh.q(target))
        self.mesh.publish(a.queue, envelope("ext-1", [a.name], 0, {"add": target}))
        [out] = self.mesh.collect(self.mesh.q(target), 1)
        self.assertEqual(out["route"], {"actors": [a.name, target], "current": 1})
        self.assert_settled(a)

    def test_envelope_mode_erasing_processed_steps_rejected(self):
        a = self.mesh.actor("erase", "component_handlers.erase_route", mode="envelope")
        first = self.mesh.name("first")
        self.mesh.publish(a.queue, envelope("er-1", [first, a.name, "z"], 1, {"k": 1}))
        [err] = self.errors(1)
        self.assertEqual(err["payload"]["error"], "processing_error")
        self.assertIn("already-processed actors cannot be erased",
                      err["payload"]["details"]["message"])
        self.assert_settled(a)

    def test_class_handler_keeps_state(self):
        a = self.mesh.actor("cls", "component_handlers.Counter.handle")
        for i in range(3):
            self.mesh.publish(a.queue, envelope("cl-%d" % i, [a.name], 0, {}))
        outs = self.happy(3)
        self.assertEqual(sorted(o["payload"]["count"] for o in outs), [1, 2, 3])
        self.assertEqual(len({o["payload"]["pid"] for o in outs}), 1)
        self.assert_settled(a)

    def test_async_handler_twenty_concurrent(self):
        a = self.mesh.actor("async", "component_handlers.async_sleep",
                            sidecar_env={"ASYA_SIDECAR_CONCURRENCY": "20"},
                            runtime_env={"ASYA_RUNTIME_CONCURRENCY": "20"}, start_sidecar=False)
        for i in range(20):  # queued first, so all are there when the sidecar starts
            self.mesh.publish(a.queue, envelope("as-%d" % i, [a.name], 0, {"s": 0.5}))
        a.start_sidecar()
        outs = self.happy(20)
        self.assertEqual(sorted(o["id"] for o in outs), sorted("as-%d" % i for i in range(20)))
        # Overlap, read from the handler's own start/end times (one runtime process, one
        # monotonic clock), not from wall time around the test: collecting the outputs costs a
        # broker connection per message on RabbitMQ. One at a time would never exceed 1.
        events = sorted([(o["payload"]["start"], 1) for o in outs] +
                        [(o["payload"]["end"], -1) for o in outs], key=lambda e: (e[0], e[1]))
        running = most = 0
        for _, delta in events:
            running += delta
            most = max(most, running)
        self.assertGreaterEqual(most, 2, "handlers did not overlap")
        self.assert_settled(a)

    def test_one_shot_runtime_closing_each_connection(self):
        a = self.mesh.actor("oneshot", runtime_cmd=[sys.executable, ONESHOT_PY])
        for i in range(4):
            self.mesh.publish(a.queue, envelope("os-%d" % i, [a.name], 0, i))
        outs = self.happy(4)
        self.assertEqual(sorted(o["payload"]["oneshot"] for o in outs), [0, 1, 2, 3])
        self.assertEqual(a.runtime.restarts, 0)
        self.assert_settled(a)


class LifecycleTests(MeshTest):
    def test_sigterm_finishes_in_flight_message_and_exits_zero(self):
        a = self.mesh.actor("term", "component_handlers.dispatch")
        mark = self.mesh.mark_path("st-1")
        self.mesh.publish(a.queue, envelope("st-1", [a.name], 0,
                                            {"op": "sleep", "s": 1.5, "mark": mark}))
        self.mesh.wait_in_handler(a.queue, mark)
        self.assertEqual(a.stop_sidecar(), 0)
        [out] = self.happy(1)
        self.assertEqual(out["id"], "st-1")
        self.assert_settled(a)

    def test_metrics_and_health(self):
        port = free_port()
        a = self.mesh.actor("met", "component_handlers.dispatch", metrics_port=port)
        for i in range(2):
            self.mesh.publish(a.queue, envelope("m-%d" % i, [a.name], 0, i))
        self.mesh.publish(a.queue, b"not json")
        self.happy(2)
        self.errors(1)
        self.assert_settled(a)
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), b"OK")
        text = a.metrics()
        q = a.name
        expected = [
            'asya_actor_messages_received_total{queue="%s",transport="%s"} 3' % (q, TRANSPORT),
            'asya_actor_messages_processed_total{queue="%s",status="success"} 2' % q,
            'asya_actor_messages_failed_total{queue="%s",reason="parse_error"} 1' % q,
            'asya_actor_messages_sent_total{destination_queue="%s",message_type="happy_end"} 2'
            % self.mesh.q(self.mesh.happy_end),
            'asya_actor_messages_sent_total{destination_queue="%s",message_type="error_end"} 1'
            % self.mesh.error_end,
            'asya_actor_runtime_execution_duration_seconds_count{queue="%s"} 2' % q,
            'asya_actor_processing_duration_seconds_count{queue="%s"} 3' % q,
            'asya_actor_envelope_size_bytes_count{direction="received"} 3',
            "asya_actor_active_messages 0",
        ]
        for line in expected:
            self.assertIn(line + "\n", text)
        for name in ("queue_receive_duration_seconds", "queue_send_duration_seconds",
                     "runtime_errors_total"):
            self.assertIn("# TYPE asya_actor_" + name, text)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % port, timeout=5)
        self.assertEqual(cm.exception.code, 404)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Fake gateway: records every request; the first final-status POST fails with 503."""

    def do_GET(self):
        self.server.calls.append(("GET", self.path, None))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.calls.append(("POST", self.path, body))
            fail = self.path.endswith("/final") and not self.server.failed_final
            if fail:
                self.server.failed_final = True
        self.send_response(503 if fail else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


class GatewayTests(MeshTest):
    """Progress, fan-out and final-status callbacks reach the gateway, off the message path."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        cls.gw.calls, cls.gw.lock, cls.gw.failed_final = [], threading.Lock(), False
        threading.Thread(target=cls.gw.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.gw.shutdown)
        cls.url = "http://127.0.0.1:%d" % cls.gw.server_address[1]

    def posts(self, suffix, n):
        deadline = time.monotonic() + WAIT
        while True:
            with self.gw.lock:
                got = [(p, b) for (m, p, b) in self.gw.calls if m == "POST" and p.endswith(suffix)]
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def test_progress_fanout_and_final_status(self):
        a = self.mesh.actor("gw", "component_handlers.dispatch",
                            sidecar_env={"ASYA_GATEWAY_URL": self.url + "/"})
        end = self.mesh.actor(self.mesh.happy_end[len(self.mesh.prefix) + 1:],
                              "component_handlers.dispatch",
                              sidecar_env={"ASYA_GATEWAY_URL": self.url,
                                           "ASYA_IS_END_ACTOR": "true"})
        self.assertEqual(end.name, self.mesh.happy_end)
        self.mesh.publish(a.queue, envelope("g-1", [a.name], 0, {"op": "fanout", "n": 2}))
        progress = self.posts("/envelopes/g-1/progress", 3)
        self.assertEqual([b["status"] for _, b in progress], ["received", "processing",
                                                               "completed"])
        for _, b in progress:
            self.assertEqual(b["actors"], [a.name])
            self.assertEqual(b["current_actor_idx"], 0)  # `completed` names the actor that did it
        self.assertIn("duration_ms", progress[2][1])
        [(_, child)] = self.posts("/envelopes", 1)
        self.assertEqual(child, {"id": "g-1-1", "parent_id": "g-1", "actors": [a.name],
                                 "current": 1})
        finals = self.posts("/final", 3)  # g-1 (retried once after the 503) and g-1-1
        by_id = {}
        for path, body in finals:
            by_id.setdefault(path, []).append(body)
        self.assertEqual(sorted(by_id), ["/envelopes/g-1-1/final", "/envelopes/g-1/final"])
        for path, bodies in by_id.items():
            self.assertEqual(bodies[-1]["status"], "succeeded")
            self.assertEqual(bodies[-1]["progress"], 1.0)
        self.assertEqual(len(finals), 3)
        self.assertEqual(sorted(b[-1]["result"]["i"] for b in by_id.values()), [0, 1])
        self.mesh.wait_drained(end.queue)
        self.assert_settled(a)


class EndActorDeadLetterGatewayTests(GatewayTests):
    """An end actor that gives up on a message (dead-letters it) reports final status `failed`."""

    test_progress_fanout_and_final_status = None  # the parent's case runs in GatewayTests

    def test_dead_lettered_at_happy_end_reports_failed(self):
        end = self.mesh.actor(self.mesh.happy_end[len(self.mesh.prefix) + 1:],
                              "component_handlers.dispatch",
                              sidecar_env={"ASYA_GATEWAY_URL": self.url,
                                           "ASYA_IS_END_ACTOR": "true",
                                           "ASYA_MAX_DELIVERIES": "2"},
                              start_sidecar=False)
        dlq = end.queue + "-dlq"
        self.mesh.ensure_queue(dlq)
        self.mesh.publish(end.queue, envelope("eg-1", ["x"], 1, {"op": "raise"}))
        for _ in range(2):  # two deliveries that never end in an ack
            self.assertIsNotNone(self.mesh.get(end.queue, wait=5, ack=False))
        end.start_sidecar()
        self.assertEqual(self.mesh.collect(dlq, 1)[0]["id"], "eg-1")
        finals = self.posts("/envelopes/eg-1/final", 2)  # the first POST gets a 503, then a retry
        self.assertGreaterEqual(len(finals), 2)
        body = finals[-1][1]
        self.assertEqual(body["id"], "eg-1")
        self.assertEqual(body["status"], "failed")
        self.assertIn("dead-lettered by " + end.name, body["error"])
        self.assertIn("max deliveries exceeded", body["error"])
        self.assert_settled(end, extra_queues=(dlq,))


class ConfigTests(unittest.TestCase):
    """Invalid configuration: one line naming the variable, exit code 2, nothing consumed."""

    def run_sidecar(self, **overrides):
        env = {"PATH": os.environ.get("PATH", ""), "ASYA_ACTOR_NAME": "cfg",
               "ASYA_TRANSPORT": "sqlite",
               "ASYA_SQLITE_PATH": os.path.join(tempfile.gettempdir(), "asya-cfg-unused.db"),
               "ASYA_METRICS_ENABLED": "false", "ASYA_RUNTIME_READY_TIMEOUT": "1s"}
        env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return subprocess.run([SIDECAR_BIN], env=env, capture_output=True, timeout=WAIT)

    def test_invalid_values_exit_2_naming_the_variable(self):
        cases = [
            ({"ASYA_ACTOR_NAME": None}, "ASYA_ACTOR_NAME"),
            ({"ASYA_RUNTIME_TIMEOUT": "soon"}, "ASYA_RUNTIME_TIMEOUT"),
            ({"ASYA_SIDECAR_CONCURRENCY": "0"}, "ASYA_SIDECAR_CONCURRENCY"),
            ({"ASYA_SIDECAR_CONCURRENCY": "many"}, "ASYA_SIDECAR_CONCURRENCY"),
            ({"ASYA_IS_END_ACTOR": "maybe"}, "ASYA_IS_END_ACTOR"),
            ({"ASYA_TRANSPORT": "kafka"}, "ASYA_TRANSPORT"),
            ({"ASYA_MAX_DELIVERIES": "-1"}, "ASYA_MAX_DELIVERIES"),
            ({"ASYA_RETRY_BACKOFF": "1 parsec"}, "ASYA_RETRY_BACKOFF"),
            ({"ASYA_METRICS_ENABLED": "perhaps"}, "ASYA_METRICS_ENABLED"),
            ({"ASYA_LOG_FORMAT": "xml"}, "ASYA_LOG_FORMAT"),
            ({"ASYA_CUSTOM_METRICS": "[{"}, "ASYA_CUSTOM_METRICS"),
            ({"ASYA_CUSTOM_METRICS": '[{"name":"x","type":"counter","labels":["bad-label"]}]'},
             "ASYA_CUSTOM_METRICS"),
        ]
        for overrides, var in cases:
            with self.subTest(var=var, overrides=overrides):
                r = self.run_sidecar(**overrides)
                self.assertEqual(r.returncode, 2, r.stderr.decode())
                err = r.stderr.decode().strip()
                self.assertIn(var, err)
                self.assertEqual(len(err.splitlines()), 1, err)

    def test_runtime_never_ready_exits_1(self):
        d = tempfile.mkdtemp(prefix="ac", dir="/tmp")
        try:
            r = self.run_sidecar(ASYA_SOCKET_DIR=d, ASYA_RUNTIME_READY_TIMEOUT="300ms")
            self.assertEqual(r.returncode, 1, r.stderr.decode())
        finally:
            os.rmdir(d)


class StartupSignalTests(unittest.TestCase):
    """A sidecar told to stop while it is still connecting to its broker stops at once."""

    def test_sigterm_while_connecting_to_rabbitmq_exits_0_without_waiting_for_the_broker(self):
        # Nothing listens on the port: the transport keeps retrying for its connect timeout
        # (15 s), after which the sidecar would exit 1 ("transport failed to start"). SIGTERM
        # before then must stop it with 0: nothing was received, nothing needs draining.
        d = tempfile.mkdtemp(prefix="as", dir="/tmp")
        log_path = os.path.join(d, "sidecar.log")
        env = {"PATH": os.environ.get("PATH", ""), "ASYA_ACTOR_NAME": "startsig",
               "ASYA_TRANSPORT": "rabbitmq",
               "ASYA_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:%d/" % free_port(),
               "ASYA_METRICS_ENABLED": "false", "ASYA_SOCKET_DIR": d}
        env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        try:
            with open(log_path, "wb") as log:
                p = subprocess.Popen([SIDECAR_BIN], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline:
                    with open(log_path, "rb") as f:
                        if b"starting" in f.read():
                            break
                    self.assertIsNone(p.poll(), "the sidecar exited before it was signalled")
                    time.sleep(0.05)
                p.send_signal(signal.SIGTERM)
                code = p.wait(timeout=WAIT)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            with open(log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            self.assertEqual(code, 0, text)
            self.assertIn("signal received while starting", text)
            self.assertNotIn("transport failed to start", text)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
