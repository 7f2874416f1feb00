"""The `asya` CLI's conventions that need no running mesh: the exit-code table and examples in
every --help, `asya send` without a mesh, `asya completion bash`, unknown names."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

BUILD_DIR = os.environ.get(
    "ASYA_BUILD_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "release"))
ASYA = os.path.abspath(os.path.join(BUILD_DIR, "bin", "asya"))

EXIT_TABLE = ("Exit codes: 0 succeeded, 1 failed, 2 usage or invalid input, "
              "3 nothing arrived within the timeout.")

# Every command and sub-command a user can ask --help of.
COMMANDS = (["up"], ["down"], ["get"], ["describe"], ["logs"], ["send"], ["render"],
            ["completion"], ["queue"], ["queue", "list"], ["queue", "depth"],
            ["queue", "publish"], ["queue", "get"], ["queue", "purge"], [])


class LocalCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="asya-lcli-")
        self.state = os.path.join(self.dir, "state")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("ASYA_") and k != "NO_COLOR"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def asya(self, *args, input=None):
        return subprocess.run([ASYA, *args], capture_output=True, text=True, input=input,
                              env=self.env, cwd=self.dir, timeout=60)

    def test_every_help_ends_with_the_exit_codes_and_examples(self):
        for cmd in COMMANDS:
            with self.subTest(cmd=cmd):
                r = self.asya(*cmd, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout.rstrip("\n")
                self.assertIn(EXIT_TABLE, out)
                examples = out[out.rindex("Examples:"):].splitlines()[1:]
                self.assertTrue(1 <= len(examples) <= 2, out)
                for line in examples:
                    self.assertTrue(line.strip().startswith("asya ") or
                                    line.strip().startswith("source <(asya"), line)
                # Help is output, not an error: nothing on stderr, no colour codes in a pipe.
                self.assertEqual(r.stderr, "")
                self.assertNotIn("\033[", r.stdout)

    def test_usage_errors_exit_2(self):
        for args in ([], ["nosuch"], ["send"], ["send", "a", "{}", "--nosuch"],
                     ["get", "pods", "--state-dir", self.state], ["completion", "zsh"],
                     ["send", "a", "{oops", "--state-dir", self.state],
                     ["send", "a", "{}", "-o", "yaml", "--state-dir", self.state]):
            with self.subTest(args=args):
                self.assertEqual(self.asya(*args).returncode, 2)

    def test_send_without_a_mesh_says_how_to_start_one_and_creates_nothing(self):
        for wait in ([], ["--wait", "--timeout", "1"]):
            with self.subTest(wait=wait):
                r = self.asya("send", "tokenize", '{"a": 1}', "--state-dir", self.state, *wait)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn("no mesh is running in " + self.state, r.stderr)
                self.assertIn("asya up PATH --detach --state-dir " + self.state, r.stderr)
                self.assertIn("--enqueue", r.stderr)
                self.assertFalse(os.path.exists(self.state), os.listdir(self.dir))
        # The default state dir (.asya in the working directory) is not created either.
        r = self.asya("send", "tokenize", '{"a": 1}')
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, ".asya")))

    def test_send_enqueue_publishes_without_a_mesh(self):
        r = self.asya("send", "tokenize", '{"a": 1}', "--state-dir", self.state, "--enqueue")
        self.assertEqual(r.returncode, 0, r.stderr)
        ident = r.stdout.strip()
        self.assertRegex(ident, r"^[0-9a-f-]{36}$")
        got = subprocess.run([ASYA, "queue", "get", "asya-tokenize", "--sqlite-path",
                              os.path.join(self.state, "queues.db")],
                             capture_output=True, text=True, env=self.env, timeout=60)
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertEqual(json.loads(got.stdout)["id"], ident)
        # -o json: one document.
        r = self.asya("send", "tokenize", "-", "--jsonl", "--state-dir", self.state,
                      "--enqueue", "-o", "json", input='{"a": 1}\n{"a": 2}\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["ids"]), 2)

    def test_nothing_in_time_exits_3(self):
        r = self.asya("send", "tokenize", '{"a": 1}', "--state-dir", self.state, "--enqueue",
                      "--wait", "--timeout", "0.3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "")  # results alone on stdout: there are none
        self.assertIn("no result within", r.stderr)
        # The same code for `asya queue get` finding nothing.
        db = os.path.join(self.state, "queues.db")
        self.assertEqual(self.asya("queue", "get", "asya-tokenize", "--sqlite-path", db).returncode, 0)
        r = self.asya("queue", "get", "asya-tokenize", "--sqlite-path", db, "--wait", "200ms")
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_progress_bar_on_a_terminal_only(self):
        import pty
        batch = '{"a": 1}\n{"a": 2}\n'
        args = ["send", "tok", "-", "--jsonl", "--state-dir", self.state, "--enqueue", "--wait",
                "--timeout", "0.5"]
        piped = self.asya(*args, input=batch)
        self.assertEqual(piped.returncode, 3, piped.stderr)
        self.assertNotIn("\r", piped.stderr)
        self.assertIn("2 envelopes (0 final), 0 results: 0 succeeded, 0 failed", piped.stderr)
        self.assertIn("no result within", piped.stderr)
        # The same with stderr on a terminal: a progress bar redrawn in place.
        master, slave = pty.openpty()
        try:
            p = subprocess.run([ASYA, *args], input=batch.encode(), stdout=subprocess.PIPE,
                               stderr=slave, env=self.env, cwd=self.dir, timeout=60)
            os.close(slave)
            slave = None
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"\r[", seen)
        self.assertIn(b"0/2 envelopes final", seen)

    def test_logs_of_an_unknown_actor_lists_the_known_ones(self):
        os.makedirs(os.path.join(self.state, "logs"))
        for name in ("echo", "tokenize", "asya"):
            open(os.path.join(self.state, "logs", name + ".log"), "w").close()
        r = self.asya("logs", "nosuch", "--state-dir", self.state)
        self.assertEqual(r.returncode, 2)
        self.assertIn('no logs for actor "nosuch"', r.stderr)
        self.assertIn("actors: echo, tokenize", r.stderr)
        # -f on a state dir without a running mesh prints what there is and ends.
        with open(os.path.join(self.state, "logs", "echo.log"), "w") as f:
            f.write("line one\n")
        r = self.asya("logs", "echo", "-f", "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "line one\n")
        self.assertIn("no mesh is running", r.stderr)

    def test_bash_completion(self):
        os.makedirs(os.path.join(self.state, "logs"))
        for name in ("echo", "tokenize", "asya"):
            open(os.path.join(self.state, "logs", name + ".log"), "w").close()
        script = os.path.join(self.dir, "asya.bash")
        with open(script, "w") as f:
            r = subprocess.run([ASYA, "completion", "bash"], stdout=f, env=self.env, timeout=60)
        self.assertEqual(r.returncode, 0)
        probe = r'''
source "$1"
complete -p asya
c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _asya
      echo "${COMPREPLY[*]}"; }
c "$2" se
c "$2" logs --state-dir "$3" ""
c "$2" send --state-dir "$3" echo,to
c "$2" send x '{}' --wa
c "$2" queue get --no
c "$2" get actors -o ""
'''
        r = subprocess.run(["bash", "-c", probe, "probe", script, ASYA, self.state],
                           capture_output=True, text=True, env=self.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("_asya", lines[0])
        self.assertEqual(lines[1:], ["send", "echo tokenize", "echo,tokenize", "--wait",
                                     "--no-ack", "wide json"])


if __name__ == "__main__":
    unittest.main()
