"""Handlers used by the component tests (loaded by asya_runtime.py via ASYA_HANDLER)."""
import asyncio
import json
import os
import time

import asya_runtime


def dispatch(payload):
    """Echo, unless payload["op"] asks for something else."""
    if not isinstance(payload, dict) or "op" not in payload:
        return payload
    op = payload["op"]
    if op == "fanout":
        return [{"i": i} for i in range(payload["n"])]
    if op == "none":
        return None
    if op == "raise":
        raise RuntimeError(payload.get("msg", "boom"))
    if op == "value_error":
        _record(payload)
        raise ValueError("bad value")
    if op == "memory":
        raise MemoryError("simulated out of memory")
    if op == "sleep":
        if "mark" in payload:  # tells the test "the message is in the handler now"
            with open(payload["mark"], "a") as f:
                f.write("%d\n" % os.getpid())
        time.sleep(payload["s"])
        return {"slept": payload["s"]}
    if op == "flaky":
        # Fails until attempt `succeed_on`; records every attempt it saw.
        attempt = asya_runtime.current_attempt()
        _record(payload, attempt)
        if attempt < payload["succeed_on"]:
            raise RuntimeError("flaky failure on attempt %d" % attempt)
        return {"ok": attempt}
    if op == "headers":
        return {"headers": asya_runtime.current_headers()}
    return payload


def _record(payload, value=1):
    with open(payload["log"], "a") as f:
        f.write(json.dumps(value) + "\n")


class Counter:
    """Class handler: state is kept across calls."""

    def __init__(self):
        self.count = 0

    def handle(self, payload):
        self.count += 1
        return {"count": self.count, "pid": os.getpid()}


async def async_sleep(payload):
    """Returns when it ran (monotonic clock of the runtime process), so tests can see overlap."""
    start = time.monotonic()
    await asyncio.sleep(payload["s"])
    return {"slept": payload["s"], "start": start, "end": time.monotonic()}


def extend_route(envelope):
    """Envelope mode: adds an actor after the current one and advances."""
    route = envelope["route"]
    route["actors"].insert(route["current"] + 1, envelope["payload"]["add"])
    route["current"] += 1
    return envelope


def erase_route(envelope):
    """Envelope mode: drops the already-processed actors (must be rejected)."""
    route = envelope["route"]
    route["actors"] = route["actors"][route["current"]:]
    route["current"] = 1
    return envelope


def self_loop(envelope):
    """Envelope mode: forgets to advance route.current (a routing loop)."""
    return envelope
