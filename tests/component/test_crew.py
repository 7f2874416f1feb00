"""asya-crew behind real end-actor sidecars (happy-end / error-end) on a real S3 (moto_server):
each envelope is stored, the sidecar's final status carries `metadata.s3_uri`, an error envelope
without an id is stored rather than dead-lettered, and a store that is down never yields a
success (the message is redelivered, then dead-lettered). Transport-independent: sqlite only."""

import http.server
import json
import os
import sys
import threading
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

from harness import BUILD, TRANSPORT, WAIT, Mesh, envelope, free_port

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault", "sqs"))
from moto_fixture import Moto  # noqa: E402

CREW_BIN = os.path.join(BUILD, "bin", "asya-crew")
S3_NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


class _Gateway(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@unittest.skipUnless(TRANSPORT == "sqlite", "the crew does not depend on the transport")
class CrewTest(unittest.TestCase):
    s3_endpoint = None  # None: a moto_server of this class

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(CREW_BIN):
            raise RuntimeError("%s is not built" % CREW_BIN)
        cls.mesh = Mesh()
        cls.addClassCleanup(cls.mesh.close)
        if cls.s3_endpoint is None:
            cls.moto = Moto()
            cls.addClassCleanup(cls.moto.stop)
            cls.endpoint = cls.moto.endpoint
        else:
            cls.endpoint = cls.s3_endpoint
        cls.gw = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
        cls.gw.posts, cls.gw.lock = [], threading.Lock()
        threading.Thread(target=cls.gw.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.gw.server_close)
        cls.addClassCleanup(cls.gw.shutdown)
        url = "http://127.0.0.1:%d" % cls.gw.server_address[1]
        cls.ends = {}
        for role, bucket in (("happy-end", "crew-results"), ("error-end", "crew-errors")):
            name = getattr(cls.mesh, role.replace("-", "_"))
            cls.ends[role] = cls.mesh.actor(
                name[len(cls.mesh.prefix) + 1:], mode="envelope", runtime_cmd=[CREW_BIN],
                runtime_env={"ASYA_ENABLE_VALIDATION": "false", "ASYA_HANDLER": role,
                             "ASYA_S3_BUCKET": bucket, "ASYA_S3_ENDPOINT": cls.endpoint,
                             "ASYA_CREW_RETRY_ATTEMPTS": "2", "ASYA_CREW_RETRY_BACKOFF": "50ms"},
                sidecar_env={"ASYA_GATEWAY_URL": url, "ASYA_IS_END_ACTOR": "true",
                             "ASYA_MAX_DELIVERIES": "2", "ASYA_RETRY_BACKOFF": "100ms"})

    def finals(self, eid, n=1):
        deadline = time.monotonic() + WAIT
        while True:
            with self.gw.lock:
                got = [b for (p, b) in self.gw.posts if p == "/envelopes/%s/final" % eid]
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def s3(self, bucket, path=""):
        # moto does not check signatures (but refuses anonymous requests).
        req = urllib.request.Request(self.endpoint + "/" + bucket + path, headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/s3/aws4_request, "
                             "SignedHeaders=host, Signature=0"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def keys(self, bucket):
        listing = ET.fromstring(self.s3(bucket, "?list-type=2"))
        return [k.text for k in listing.findall(".//s3:Contents/s3:Key", S3_NS)]


class CrewOnS3(CrewTest):
    def test_happy_end_stores_the_envelope_and_reports_its_s3_uri(self):
        end = self.ends["happy-end"]
        self.mesh.publish(end.queue, envelope("cr-1", ["prep", "infer"], 2, {"answer": 42}))
        [final] = self.finals("cr-1")
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["result"], {"answer": 42})  # the incoming payload, unchanged
        uri = final["metadata"]["s3_uri"]
        self.assertTrue(uri.startswith("s3://crew-results/happy-asya/"), uri)
        self.assertTrue(uri.endswith("/infer/cr-1.json"), uri)
        key = uri[len("s3://crew-results/"):]
        self.assertIn(key, self.keys("crew-results"))
        stored = json.loads(self.s3("crew-results", "/" + urllib.request.quote(key)))
        self.assertEqual((stored["id"], stored["payload"]), ("cr-1", {"answer": 42}))
        self.mesh.wait_drained(end.queue)

    def test_error_end_files_under_the_failed_actor_and_keeps_id_less_envelopes(self):
        end = self.ends["error-end"]
        self.mesh.ensure_queue(end.queue + "-dlq")
        self.mesh.publish(end.queue, envelope("ce-1", ["prep", "infer"], 0,
                                              {"error": "processing_error"}))
        [final] = self.finals("ce-1")
        self.assertEqual(final["status"], "failed")
        # The error envelope of a message that was not JSON: "id": "".
        self.mesh.publish(end.queue, json.dumps({
            "id": "", "route": {"actors": [end.name], "current": 0},
            "payload": {"error": "Failed to parse message: x", "original_body": "{oops"}}))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and len(self.keys("crew-errors")) < 2:
            time.sleep(0.1)
        keys = sorted(self.keys("crew-errors"))
        self.assertEqual(len(keys), 2, keys)
        self.assertTrue(all(k.startswith("error-asya/") for k in keys), keys)
        self.assertTrue(any(k.endswith("/prep/ce-1.json") for k in keys), keys)  # actor 0 failed
        generated = [k for k in keys if "/crew-" in k]
        self.assertEqual(len(generated), 1, keys)
        stored = json.loads(self.s3("crew-errors", "/" + urllib.request.quote(generated[0])))
        self.assertEqual(stored["payload"]["original_body"], "{oops")
        self.mesh.wait_drained(end.queue)
        self.assertEqual(self.mesh.depth(end.queue + "-dlq"), (0, 0))


class CrewWithTheStoreDown(CrewTest):
    s3_endpoint = "http://127.0.0.1:%d" % free_port()  # nothing listens there

    def test_no_success_is_reported_and_the_message_is_dead_lettered(self):
        end = self.ends["happy-end"]
        dlq = end.queue + "-dlq"
        self.mesh.ensure_queue(dlq)
        self.mesh.publish(end.queue, envelope("down-1", ["a"], 1, {"x": 1}))
        [dead] = self.mesh.collect(dlq, 1)
        self.assertEqual(dead["id"], "down-1")
        self.assertIn("max deliveries exceeded", dead["headers"]["x-asya-dlq-reason"])
        finals = self.finals("down-1")
        self.assertEqual([f["status"] for f in finals], ["failed"])  # never "succeeded"
        self.assertIn("dead-lettered by", finals[0]["error"])
        with open(os.path.join(self.mesh.dir, end.name + ".runtime.log")) as f:
            runtime_log = f.read()
        self.assertIn("storing the envelope failed; retrying", runtime_log)
        self.mesh.wait_drained(end.queue)


if __name__ == "__main__":
    unittest.main()
