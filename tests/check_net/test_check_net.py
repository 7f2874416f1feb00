"""`asya check` network faults on RabbitMQ: the broker in its own network namespace is cut off,
slowed down and made lossy; the faults must bite (the broker unreachable from this machine during
a partition, packets dropped, bytes held) and nothing may be lost or left behind."""

import os
import re
import shutil
import signal
import subprocess
import unittest

SOURCE_DIR = os.environ.get(
    "ASYA_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
)
BUILD_DIR = os.environ.get("ASYA_BUILD_DIR", os.path.join(SOURCE_DIR, "build", "release"))
ASYA = os.path.join(BUILD_DIR, "bin", "asya")
RABBITMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RESULT = re.compile(r"^lost=(\d+) duplicated=(\d+) unexpected=(\d+)$")
VETH = re.compile(r"network namespace for the broker: veth (\S+) ")


def env():
    return {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}


def links():
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@unittest.skipUnless(os.geteuid() == 0 and os.path.exists(RABBITMQ) and shutil.which("nft"),
                     "needs root, rabbitmq-server and nft")
class NetworkFaultsTest(unittest.TestCase):
    def test_partition_delay_loss_bite_and_lose_nothing(self):
        r = subprocess.run(
            [ASYA, "check", "--transport", "rabbitmq", "--envelopes", "200", "--rate", "7",
             "--faults", "partition,delay,loss", "--fault-interval", "1", "--seed", "4",
             "--quiet", "4", "--timeout", "120"],
            capture_output=True, text=True, timeout=400, env=env())
        out = r.stdout
        lines = out.strip().splitlines()
        m = RESULT.match(lines[-1]) if lines else None
        self.assertIsNotNone(m, out[-4000:] + r.stderr)
        lost, _dup, unexpected = (int(x) for x in m.groups())
        self.assertEqual((lost, unexpected), (0, 0), out[-5000:])
        self.assertEqual(r.returncode, 0, out[-3000:])
        # partition: the host cannot reach the broker, packets were dropped, then it is back
        self.assertRegex(out, r"fault #\d+ partition: broker cut off for 4\.0s \(host probe: "
                              r"10\.201\.\d+\.\d+:5672 unreachable\)")
        healed = re.findall(r"fault #\d+ (partition|loss): healed, (\d+) packets dropped, .*"
                            r"\(host probe: \S+ reachable\)", out)
        self.assertEqual({k for k, _ in healed}, {"loss", "partition"}, out[-5000:])
        for kind in ("loss", "partition"):  # (one healed at once at the end may have dropped 0)
            self.assertGreater(max(int(n) for k, n in healed if k == kind), 0, kind)
        # delay: a fresh connection's answer took at least twice the added delay
        d = re.search(r"fault #\d+ delay: (\d+) ms added each way .*through the proxy: (-?\d+) ms",
                      out)
        self.assertIsNotNone(d, out[-5000:])
        self.assertGreaterEqual(int(d.group(2)), 2 * int(d.group(1)), d.group(0))
        self.assertRegex(out, r"fault #\d+ loss: \d+% of the packets to and from \S+ dropped")
        # nothing left behind: the host end of the veth pair is gone
        veth = VETH.search(out).group(1)
        self.assertNotIn(veth, links())

    def test_interrupted_during_a_partition_leaves_nothing_behind(self):
        p = subprocess.Popen(
            [ASYA, "check", "--transport", "rabbitmq", "--envelopes", "100000", "--rate", "20",
             "--faults", "partition-long", "--fault-interval", "1", "--seed", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
        out = []
        veth = None
        try:
            for line in p.stdout:
                out.append(line)
                veth = veth or (VETH.search(line).group(1) if VETH.search(line) else None)
                if "partition-long: broker cut off" in line:
                    self.assertIn("unreachable", line)
                    self.assertIn(veth, links())
                    p.send_signal(signal.SIGINT)
                    break
            rest, _ = p.communicate(timeout=200)
            out.append(rest)
        finally:
            if p.poll() is None:
                p.kill()
        text = "".join(out)
        self.assertIn("interrupted: accounting", text, text[-3000:])
        self.assertIsNotNone(veth, text[-3000:])
        self.assertNotIn(veth, links())
        self.assertNotIn("asya_check", subprocess.run(["nft", "list", "tables"],
                                                      capture_output=True, text=True).stdout)


if __name__ == "__main__":
    unittest.main()
