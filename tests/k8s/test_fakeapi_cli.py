"""`python3 -m fakeapi` as other tests (the C++ operator's) start it: port 0, --crd,
--ready-file, --kubeconfig, admin hooks over HTTP, clean exit on SIGTERM."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from fakeapi_testlib import CRD_PATH, HERE, Client, actor


class CliTest(unittest.TestCase):
    def start(self, *args):
        tmp = tempfile.mkdtemp(prefix="fakeapi-cli-")
        ready = os.path.join(tmp, "port")
        kc = os.path.join(tmp, "kubeconfig")
        p = subprocess.Popen([sys.executable, "-m", "fakeapi", "--port", "0", "--crd", CRD_PATH,
                              "--ready-file", ready, "--kubeconfig", kc, *args],
                             cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
            self.assertLess(time.monotonic(), deadline, "fakeapi did not become ready")
            time.sleep(0.05)
        with open(ready) as f:
            port = int(f.read())
        return p, port, kc

    def test_ready_file_kubeconfig_hooks_and_sigterm(self):
        p, port, kc = self.start("--event-window", "2", "--no-controllers")
        self.assertGreater(port, 0)
        with open(kc) as f:
            self.assertIn(f"server: http://127.0.0.1:{port}", f.read())
        c = Client(f"http://127.0.0.1:{port}")
        path = "/apis/asya.sh/v1alpha1/namespaces/default/asyncactors"
        self.assertEqual(c.post(path, actor("a")).code, 201)
        state = c.get("/fake/state").body
        self.assertEqual(state["eventWindow"], 2)
        self.assertEqual(c.get("/fake/controllers").body["workloads"], False)
        self.assertEqual(c.post("/fake/compact", {}).code, 200)
        self.assertEqual(c.get("/fake/state").body["oldestResourceVersion"],
                         state["resourceVersion"])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertIn(f"listening on http://127.0.0.1:{port}", p.stdout.read())

    def test_bad_crd_file_fails_with_a_message(self):
        tmp = tempfile.mkdtemp(prefix="fakeapi-cli-")
        bad = os.path.join(tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                    "metadata: {name: wrong.example.com}\nspec: {group: example.com, names: "
                    "{plural: things, kind: Thing}, versions: []}\n")
        p = subprocess.run([sys.executable, "-m", "fakeapi", "--crd", bad], cwd=HERE,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("metadata.name", p.stderr)


if __name__ == "__main__":
    unittest.main()
