"""Handlers for the SQS fault tests (loaded by asya_runtime.py via ASYA_HANDLER)."""
import json
import time


def slow_counted(payload):
    """Records the call in payload["log"], sleeps payload["s"] seconds, echoes the payload."""
    with open(payload["log"], "a") as f:
        f.write(json.dumps(time.time()) + "\n")
    time.sleep(payload["s"])
    return payload


def big(payload):
    """Returns a payload of payload["n"] bytes (more than SQS carries when n > 256 KiB)."""
    return {"blob": "x" * payload["n"]}
