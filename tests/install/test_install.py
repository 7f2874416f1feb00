"""Issue 11 item 9: the install step and the CMake package. Installs the build tree to a temporary
prefix, builds examples/cpp out of tree with find_package(asya) + asya::runtime, and runs its
manifests with the installed `asya up` (sidecar, crew and asya_runtime.py found beside it)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get(
    "ASYA_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))


def run(*cmd, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="asya-install-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.prefix = os.path.join(self.dir, "prefix")
        r = run("cmake", "--install", BUILD_DIR, "--prefix", self.prefix)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.asya = os.path.join(self.prefix, "bin", "asya")
        self.state = os.path.join(self.dir, "state")

    def up(self, *args):
        return run(self.asya, "up", *args, "--state-dir", self.state, "--restart-backoff",
                   "500ms", timeout=300)

    def test_install_layout(self):
        for rel in ("bin/asya", "bin/asya-sidecar", "bin/asya-crew", "bin/asya-gateway", "bin/asya_runtime.py",
                    "include/asya/runtime/serve.h", "include/asya/base/result.h",
                    "include/asya/protocol/runtime_client.h", "lib/libasya_runtime.a",
                    "lib/cmake/asya/asyaConfig.cmake", "lib/cmake/asya/asyaConfigVersion.cmake",
                    "lib/cmake/asya/asyaTargets.cmake"):
            self.assertTrue(os.path.exists(os.path.join(self.prefix, rel)), rel)

    def test_cpp_example_builds_out_of_tree_and_runs(self):
        src = os.path.join(self.dir, "cpp")
        shutil.copytree(os.path.join(SOURCE_DIR, "examples", "cpp"), src,
                        ignore=shutil.ignore_patterns("build"))
        manifests = os.path.join(src, "manifests")
        # Before the build: the command the annotation names does not exist yet.
        r = self.up(manifests)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('actor "word-count": metadata.annotations[asya.sh/local-command]: '
                      + os.path.join(src, "build", "asya-word-count-runtime") + ": no such file",
                      r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.state, "status.json")))
        build = os.path.join(src, "build")
        r = run("cmake", "-S", src, "-B", build, "-DCMAKE_PREFIX_PATH=" + self.prefix)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("cmake", "--build", build, "-j", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.up(manifests, "--detach")
        self.addCleanup(run, self.asya, "down", "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(self.asya, "send", "word-count", '{"text": "One two. Three!"}', "--wait",
                "--timeout", "60", "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('"words":2', r.stdout.replace(" ", ""))
        r = run(self.asya, "down", "--state-dir", self.state)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
