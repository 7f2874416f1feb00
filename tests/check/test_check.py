"""`asya check`: it must see a deliberate loss, and a short fault schedule must lose nothing."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get(
    "ASYA_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))
ASYA = os.path.join(BUILD_DIR, "bin", "asya")
RESULT = re.compile(r"^lost=(\d+) duplicated=(\d+) unexpected=(\d+)$")


def check(*args, timeout=400):
    """Runs `asya check ARGS` (which gives up by itself after --timeout 120)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
    return subprocess.run([ASYA, "check", *args, "--timeout", "120"], capture_output=True,
                          text=True, timeout=timeout, env=env)


def result_line(r):
    lines = r.stdout.strip().splitlines()
    m = RESULT.match(lines[-1]) if lines else None
    if m is None:
        raise AssertionError("no result line at the end:\n%s\n%s" % (r.stdout[-4000:], r.stderr))
    return tuple(int(x) for x in m.groups())


def warnings_of(path, limit=60):
    try:
        with open(path, errors="replace") as f:
            lines = [l for l in f if "level=warn" in l or "level=error" in l or "asya:" in l]
    except FileNotFoundError:
        return "(no log)"
    return "".join(lines[-limit:])


class CheckTest(unittest.TestCase):
    def test_deliberate_drop_is_lost(self):
        r = check("--envelopes", "60", "--rate", "10", "--faults", "drop", "--seed", "5",
                  "--fault-interval", "0.5", "--quiet", "4")
        self.assertEqual(result_line(r)[0], 1, r.stdout[-3000:])
        self.assertEqual(r.returncode, 1, r.stdout[-3000:])
        self.assertRegex(r.stdout, r"fault #1 drop \(test only\): deleted chk5n\d{8}(-1)? from")
        self.assertRegex(r.stdout, r"lost \(first 1\): chk5n\d{8}")

    def test_short_fault_schedule_loses_nothing(self):
        kinds = ["kill-sidecar", "kill-runtime", "stop-runtime", "kill-all"]
        if os.geteuid() == 0:  # disk-full mounts a tmpfs
            kinds.append("disk-full")
        work = tempfile.mkdtemp(prefix="asya-check-test-", dir="/tmp")
        r = check("--envelopes", "200", "--rate", "20", "--duration", "12", "--fault-interval", "1",
                  "--faults", ",".join(kinds), "--seed", "3", "--work-dir", work)
        lost, _dup, unexpected = result_line(r)
        self.assertEqual((lost, unexpected), (0, 0),
                         r.stdout[-5000:] + "\n--- %s/up.log (warnings) ---\n" % work
                         + warnings_of(os.path.join(work, "up.log")))
        shutil.rmtree(work, ignore_errors=True)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:])
        faults = re.findall(r"fault #\d+ ([a-z-]+)", r.stdout)
        self.assertGreaterEqual(len(set(faults)), 3, r.stdout[-3000:])
        self.assertTrue(set(faults) <= set(kinds), faults)
        self.assertIn("progress: published", r.stdout)
        self.assertRegex(r.stdout, r"summary: 200 envelopes, 400 expected outputs, 400 arrived")

    def test_unknown_fault_is_a_usage_error(self):
        r = check("--envelopes", "5", "--faults", "kill-sidecar,meteor")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown fault 'meteor'", r.stderr)
        r = check("--envelopes", "5", "--faults", "broker-kill")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs --transport rabbitmq", r.stderr)
        r = check("--envelopes", "5", "--faults", "kill-runtime,partition")
        self.assertEqual(r.returncode, 2)
        self.assertIn("fault partition needs --transport rabbitmq or sqs", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_network_fault_without_root_is_a_clear_error(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ASYA,
                            "check", "--transport", "rabbitmq", "--faults", "loss",
                            "--envelopes", "5"], capture_output=True, text=True, timeout=60,
                           env=env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("fault loss needs root", r.stderr)


if __name__ == "__main__":
    unittest.main()
