"""A throw-away moto_server for Python tests; `python3 moto_fixture.py CMD...` runs CMD against one.

Run mode exports ASYA_TEST_TRANSPORT=sqs, ASYA_SQS_ENDPOINT, AWS_ACCESS_KEY_ID/SECRET (moto does
not check them) and AWS_DEFAULT_REGION, runs CMD, stops moto and exits with CMD's status.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="asya-moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited; log: " + self.log.name)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not listen; log: " + self.log.name)
                time.sleep(0.05)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def env(self):
        return {"ASYA_TEST_TRANSPORT": "sqs", "ASYA_SQS_ENDPOINT": self.endpoint,
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.unlink(self.log.name)


def main():
    moto = Moto()
    try:
        env = dict(os.environ)
        env.update(moto.env())
        sys.exit(subprocess.call(sys.argv[1:], env=env))
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
