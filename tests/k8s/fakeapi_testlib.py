"""Helpers for tests that run against the fake API server.

CRD_PATH is the one place tests take the AsyncActor CRD from: the fake's own minimal fixture
unless FAKEAPI_TEST_CRD names another file (e.g. deploy/crds/asya.sh_asyncactors.yaml).
"""

import http.client
import json
import os
import shutil
import tempfile
import time
import unittest
import urllib.parse

from fakeapi import FakeApiServer

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "fakeapi", "testdata")
# The fake's own minimal CRD: tests of the fake's schema/CEL/Table mechanics assert its rules.
FIXTURE_CRD = os.path.join(TESTDATA, "asyncactors-crd.yaml")
# The AsyncActor CRD everything else runs with (kubectl, controllers, operator tests):
# $FAKEAPI_TEST_CRD, else the product CRD once it is in the tree, else the fixture.
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
# The real kubectl: the machine's, else the pinned one tools/install-deps.sh unpacks.
KUBECTL = shutil.which("kubectl") or os.path.join(
    os.environ.get("ASYA_DEPLOY_TOOLS", os.path.join(SOURCE_DIR, "build", "deploy-tools")),
    "bin", "kubectl")
PRODUCT_CRD = os.path.join(SOURCE_DIR, "deploy", "crds", "asya.sh_asyncactors.yaml")
CRD_PATH = os.environ.get("FAKEAPI_TEST_CRD") or (
    PRODUCT_CRD if os.path.exists(PRODUCT_CRD) else FIXTURE_CRD)
ACTORS = "/apis/asya.sh/v1alpha1/namespaces/{ns}/asyncactors"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Response:
    def __init__(self, code, body, headers):
        self.code, self.body, self.headers = code, body, headers

    def __repr__(self):
        return f"<{self.code} {json.dumps(self.body)[:300]}>"


class Client:
    """A tiny JSON client over http.client (one connection per request)."""

    def __init__(self, url, user_agent="fakeapi-tests/1.0"):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.ua = user_agent

    def request(self, method, path, body=None, ctype="application/json", params=None,
                accept="application/json", raw=False):
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
        headers = {"Accept": accept, "User-Agent": self.ua}
        if data is not None:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        if raw:
            return Response(resp.status, payload, dict(resp.getheaders()))
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode()
        return Response(resp.status, parsed, dict(resp.getheaders()))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, ptype="merge", **kw):
        ctype = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json",
                 "apply": "application/apply-patch+yaml"}[ptype]
        return self.request("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body, **kw)

    def watch(self, path, params):
        """Yields watch events (dicts) until the server ends the stream."""
        q = dict(params, watch="1")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request("GET", path + "?" + urllib.parse.urlencode(q),
                     headers={"Accept": "application/json", "User-Agent": self.ua})
        resp = conn.getresponse()
        if resp.status != 200:
            body = resp.read()
            conn.close()
            yield {"type": "HTTP", "code": resp.status, "object": json.loads(body)}
            return
        try:
            while True:
                line = resp.readline()
                if not line:
                    break
                yield json.loads(line)
        finally:
            conn.close()


def actor(name, **spec_over):
    spec = {"transport": "rabbitmq",
            "workload": {"template": {"spec": {"containers": [
                {"name": "asya-runtime", "image": "handler:1"}]}}}}
    spec.update(spec_over)
    return {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor",
            "metadata": {"name": name}, "spec": spec}


def deployment(name, replicas=1, image="handler:1", labels=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "asya-runtime", "image": image},
                         {"name": "asya-sidecar", "image": "sidecar:1"}]}}}}


def wait_for(fn, timeout=30.0, interval=0.05, what="condition"):
    """Polls fn() until it returns a truthy value (the timeout is a fail-safe, not a check)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class FakeApiTestCase(unittest.TestCase):
    """Starts a fresh fake API server (with the test CRD) for each test."""

    controllers = True
    bookmark_interval = 5.0
    window = 10000
    crd = CRD_PATH

    def setUp(self):
        self.api = FakeApiServer(crd_files=[self.crd], controllers=self.controllers,
                                 bookmark_interval=self.bookmark_interval,
                                 window=self.window).start()
        self.addCleanup(self.api.stop)
        self.c = Client(self.api.url)
        self.tmp = tempfile.mkdtemp(prefix="fakeapi-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def actors(self, ns="default"):
        return ACTORS.format(ns=ns)

    def ok(self, resp, code=None):
        if code is not None:
            self.assertEqual(resp.code, code, resp)
        else:
            self.assertLess(resp.code, 300, resp)
        return resp.body
