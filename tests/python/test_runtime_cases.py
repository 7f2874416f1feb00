"""The shared table tests/shared/runtime_error_cases.json against src/runtime/python/asya_runtime.py
(tests/unit/runtime/processor_test.cc runs the same table against the C++ SDK)."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runtime_harness import REPO, RuntimeProcess  # noqa: E402

CASES_FILE = os.path.join(REPO, "tests", "shared", "runtime_error_cases.json")
HANDLERS = {"payload": "h_payload.noop", "envelope": "h_envelope.dispatch"}


def expand(text):
    """{{X*N}} -> X repeated N times."""
    return re.sub(r"\{\{(.+?)\*(\d+)\}\}", lambda m: m.group(1) * int(m.group(2)), text)


def request_bytes(case):
    if "request_latin1" in case:
        return case["request_latin1"].encode("latin-1")
    return expand(case["request"]).encode("utf-8")


def load_cases():
    with open(CASES_FILE, encoding="utf-8") as f:
        return json.load(f)["cases"]


class SharedCasesTest(unittest.TestCase):

    def test_table_is_well_formed(self):
        cases = load_cases()
        self.assertGreater(len(cases), 50)
        names = [c["name"] for c in cases]
        self.assertEqual(len(names), len(set(names)), "case names must be unique")
        for c in cases:
            self.assertEqual(("request" in c) + ("request_latin1" in c), 1, c["name"])
            self.assertEqual(("error" in c) + ("response" in c) + ("response_text" in c), 1,
                             c["name"])
            self.assertIn(c.get("mode", "payload"), HANDLERS, c["name"])

    def test_python_runtime_answers_every_case(self):
        cases = load_cases()
        runtimes = {}
        try:
            for case in cases:
                mode = case.get("mode", "payload")
                validate = case.get("validate", True)
                key = (mode, validate)
                if key not in runtimes:
                    runtimes[key] = RuntimeProcess(
                        HANDLERS[mode], ASYA_HANDLER_MODE=mode,
                        ASYA_ENABLE_VALIDATION="true" if validate else "false")
                rt = runtimes[key]
                with self.subTest(case=case["name"]):
                    got = rt.call(request_bytes(case))
                    if "error" in case:
                        self.assertIsInstance(got, list)
                        self.assertEqual(len(got), 1, got)
                        self.assertIn("error", got[0], got)
                        details = got[0]["details"]
                        self.assertEqual({"code": got[0]["error"], "type": details["type"],
                                          "message": details["message"]}, case["error"])
                    elif "response" in case:
                        self.assertEqual(got, case["response"])
                    else:
                        self.assertEqual(got, json.loads(expand(case["response_text"])))
        finally:
            for rt in runtimes.values():
                rt.close()


if __name__ == "__main__":
    unittest.main()
