"""python3 -m fakeapi --port 0 --crd FILE ... [--ready-file F] [--kubeconfig F]

Prints `fakeapi listening on http://127.0.0.1:<port>` and writes the port to --ready-file
(written atomically once the server accepts connections). Runs until SIGTERM/SIGINT.
"""

import argparse
import os
import signal
import sys
import threading

from .server import FakeApiServer
from .util import ApiError


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fakeapi", description="Fake Kubernetes API server "
                                 "(a test simulation)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--crd", action="append", default=[], help="CRD YAML file (repeatable)")
    ap.add_argument("--ready-file", help="write the port here when ready")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    ap.add_argument("--event-window", type=int, default=10000,
                    help="watch events retained; older resourceVersions get 410 Gone")
    ap.add_argument("--bookmark-interval", type=float, default=5.0,
                    help="seconds between watch bookmarks")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (also the CA "
                    "written into --kubeconfig)")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--token", help="require `Authorization: Bearer TOKEN` on API requests")
    ap.add_argument("--no-controllers", action="store_true",
                    help="start with the simulated controllers off (toggle via /fake/controllers)")
    a = ap.parse_args(argv)
    try:
        srv = FakeApiServer(port=a.port, crd_files=a.crd, window=a.event_window,
                            bookmark_interval=a.bookmark_interval,
                            controllers=not a.no_controllers, host=a.host,
                            tls_cert=a.tls_cert, tls_key=a.tls_key, token=a.token)
    except (OSError, ValueError, ApiError) as e:
        print(f"fakeapi: {e}", file=sys.stderr)
        return 2
    srv.start()
    if a.kubeconfig:
        srv.kubeconfig(a.kubeconfig)
    print(f"fakeapi listening on {srv.url}", flush=True)
    if a.ready_file:
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{srv.port}\n")
        os.replace(tmp, a.ready_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
