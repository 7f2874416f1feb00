"""SQS benchmark: asya-sidecar (SQS transport, C++ echo runtime) vs a raw batched HTTP loop, both
against the same moto_server, same queue depth profile, same message.

usage: python3 sqs_bench.py BIN_DIR [N] [REPS] [CONCURRENCIES]
  raw loop:  ReceiveMessage(10) -> SendMessageBatch(10) -> DeleteMessageBatch(10), one thread,
             http.client, JSON protocol (moto does not check signatures: a SigV4-shaped header)
  sidecar:   ASYA_SIDECAR_CONCURRENCY=C, route [bench] -> happy-end; timed from sidecar start
             until the input queue is empty (polled every 200 ms)
Each run pre-fills the input queue with N messages (not timed). Prints per-run rates, medians
and sidecar/raw ratios.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "fault", "sqs"))
from moto_fixture import Moto  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pairs import summary as pairs_summary  # noqa: E402

AUTH = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0")
BODY = json.dumps({"id": "8c0e7b1e-4a7e-4c39-9d7a-2f1f3b6c9a10",
                   "route": {"actors": ["bench"], "current": 0},
                   "payload": {"text": "hello world from the asya baseline", "n": 42}})


class Sqs:
    def __init__(self, port):
        self.port = port

    def call(self, op, params):
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request("POST", "/", json.dumps(params),
                  {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS." + op,
                   "Authorization": AUTH, "X-Amz-Date": "20260101T000000Z"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError("%s: %d %s" % (op, r.status, data[:200]))
        return json.loads(data) if data else {}

    def create(self, name):
        return self.call("CreateQueue", {"QueueName": name})["QueueUrl"]

    def delete(self, url):
        self.call("DeleteQueue", {"QueueUrl": url})

    def fill(self, url, n):
        for start in range(0, n, 10):
            entries = [{"Id": str(i), "MessageBody": BODY} for i in range(min(10, n - start))]
            self.call("SendMessageBatch", {"QueueUrl": url, "Entries": entries})

    def depth(self, url):
        a = self.call("GetQueueAttributes", {
            "QueueUrl": url,
            "AttributeNames": ["ApproximateNumberOfMessages",
                               "ApproximateNumberOfMessagesNotVisible"]})["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def raw_loop(sqs, n, tag):
    src, dst = sqs.create("asya-rawin-" + tag), sqs.create("asya-rawout-" + tag)
    sqs.fill(src, n)
    done = 0
    t0 = time.perf_counter()
    while done < n:
        msgs = sqs.call("ReceiveMessage", {"QueueUrl": src, "MaxNumberOfMessages": 10,
                                           "WaitTimeSeconds": 1,
                                           "VisibilityTimeout": 60}).get("Messages", [])
        if not msgs:
            continue
        sqs.call("SendMessageBatch", {"QueueUrl": dst, "Entries": [
            {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(msgs)]})
        sqs.call("DeleteMessageBatch", {"QueueUrl": src, "Entries": [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]})
        done += len(msgs)
    rate = n / (time.perf_counter() - t0)
    sqs.delete(src)
    sqs.delete(dst)
    return rate


def sidecar_run(sqs, moto, bin_dir, n, concurrency, tag):
    actor, out = "bench" + tag, "benchout" + tag
    src, dst = sqs.create("asya-" + actor), sqs.create("asya-" + out)
    sqs.create("asya-" + actor + "-dlq")
    sqs.fill(src, n)
    sock_dir = tempfile.mkdtemp(prefix="asb", dir="/tmp")
    env = dict(os.environ)
    env.update(moto.env())
    env.update({"ASYA_SOCKET_DIR": sock_dir, "ASYA_ACTOR_NAME": actor, "ASYA_TRANSPORT": "sqs",
                "ASYA_ACTOR_HAPPY_END": out, "ASYA_ACTOR_ERROR_END": out,
                "ASYA_SIDECAR_CONCURRENCY": str(concurrency), "ASYA_METRICS_ENABLED": "false",
                "ASYA_LOG_LEVEL": "WARN", "ASYA_SQS_WAIT_TIME_SECONDS": "1",
                "ASYA_RUNTIME_CONCURRENCY": str(concurrency)})
    log = open(os.path.join(sock_dir, "log"), "wb")
    procs = []
    try:
        procs.append(subprocess.Popen([os.path.join(bin_dir, "asya-echo-runtime")], env=env,
                                      stdout=log, stderr=log))
        ready = os.path.join(sock_dir, "runtime-ready")
        while not os.path.exists(ready):
            time.sleep(0.01)
        t0 = time.perf_counter()
        sidecar = subprocess.Popen([os.path.join(bin_dir, "asya-sidecar")], env=env, stdout=log,
                                   stderr=log)
        procs.insert(0, sidecar)
        while sqs.depth(src) > 0:
            if sidecar.poll() is not None:
                raise RuntimeError("sidecar exited; log in " + sock_dir)
            time.sleep(0.2)  # each poll costs moto a call: keep them rare
        rate = n / (time.perf_counter() - t0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            p.wait(30)
        log.close()
    got = sqs.depth(dst)
    if got != n:
        raise RuntimeError("expected %d results, found %d" % (n, got))
    for url in (src, dst):
        sqs.delete(url)
    shutil.rmtree(sock_dir, ignore_errors=True)
    return rate


def main():
    # SIGTERM (e.g. a timeout) unwinds through the finally blocks, so no process is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bin_dir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    concurrencies = [int(c) for c in (sys.argv[4] if len(sys.argv) > 4 else "1,10,20").split(",")]
    moto = Moto()
    try:
        sqs = Sqs(moto.port)
        results = {"raw": []}
        for c in concurrencies:
            results["sidecar-c%d" % c] = []
        for rep in range(reps):
            results["raw"].append(raw_loop(sqs, n, "%d" % rep))
            print("rep %d raw batched loop: %.0f msg/s" % (rep, results["raw"][-1]), flush=True)
            for c in concurrencies:
                r = sidecar_run(sqs, moto, bin_dir, n, c, "%dc%d" % (rep, c))
                results["sidecar-c%d" % c].append(r)
                print("rep %d sidecar concurrency %d: %.0f msg/s" % (rep, c, r), flush=True)
        print("N=%d, %d reps, each sidecar run paired with the raw run of its rep:" % (n, reps))
        for c in concurrencies:
            pairs = list(zip(results["sidecar-c%d" % c], results["raw"]))
            target = 0.80 if c > 1 else 0.0  # concurrency 1 is shown, not a target
            print("  " + pairs_summary("sqs hop concurrency %d vs raw batched loop" % c, target,
                                       pairs, " msg/s"))
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
