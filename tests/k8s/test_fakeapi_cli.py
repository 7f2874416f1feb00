"""`python3 -m fakeapi` as other tests (the C++ operator's) start it: port 0, --crd,
--ready-file, --kubeconfig, admin hooks over HTTP, clean exit on SIGTERM."""

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import urllib.error
import urllib.request

from fakeapi_testlib import CRD_PATH, HERE, KUBECTL, Client, actor


class CliTest(unittest.TestCase):
    def start(self, *args, crd=CRD_PATH):
        tmp = tempfile.mkdtemp(prefix="fakeapi-cli-")
        ready = os.path.join(tmp, "port")
        kc = os.path.join(tmp, "kubeconfig")
        p = subprocess.Popen([sys.executable, "-m", "fakeapi", "--port", "0", "--crd", crd,
                              "--ready-file", ready, "--kubeconfig", kc, *args],
                             cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(shutil.rmtree, tmp, True)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.stdout.close)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
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

    def test_https_with_ca_and_bearer_token(self):
        tmp = tempfile.mkdtemp(prefix="fakeapi-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        p, port, kc = self.start("--tls-cert", cert, "--tls-key", key, "--token", "s3cret")
        ctx = ssl.create_default_context(cafile=cert)
        url = f"https://127.0.0.1:{port}/api/v1/namespaces"

        def get(headers):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                            context=ctx, timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        self.assertEqual(get({}), 401)
        self.assertEqual(get({"Authorization": "Bearer wrong"}), 401)
        self.assertEqual(get({"Authorization": "Bearer s3cret"}), 200)
        out = subprocess.run([KUBECTL, "--kubeconfig", kc, "--cache-dir",
                              os.path.join(tmp, "cache"), "get", "ns"], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, HOME=tmp))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("kube-system", out.stdout)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)

    def test_crd_directory(self):
        tmp = tempfile.mkdtemp(prefix="fakeapi-cli-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copy(CRD_PATH, os.path.join(tmp, "actors.yaml"))
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write("not a CRD")
        p, port, _ = self.start(crd=tmp)
        c = Client(f"http://127.0.0.1:{port}")
        self.assertEqual(c.get("/apis/asya.sh/v1alpha1").code, 200)

    def test_bad_crd_file_fails_with_a_message(self):
        tmp = tempfile.mkdtemp(prefix="fakeapi-cli-")
        self.addCleanup(shutil.rmtree, tmp, True)
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
