"""Payload-mode test handlers for tests/python/test_runtime.py (not a test module)."""
import os
import sys
import threading
import time

import asya_runtime

NOT_CALLABLE = 42

_ERRORS = {"ValueError": ValueError, "RuntimeError": RuntimeError, "KeyError": KeyError,
           "TypeError": TypeError, "MemoryError": MemoryError}


def noop(payload):
    return payload


def dispatch(payload):
    """Behaviour chosen by payload["op"]; anything else is echoed."""
    if not isinstance(payload, dict) or "op" not in payload:
        return payload
    op = payload["op"]
    if op == "return":
        return payload.get("value")
    if op == "raise":
        msg = payload.get("msg", "boom") * payload.get("repeat", 1)
        raise _ERRORS[payload.get("type", "ValueError")](msg)
    if op == "sleep":
        time.sleep(payload["s"])
        return {"slept": payload["s"], "thread": threading.current_thread().name}
    if op == "nan":
        return {"x": float("nan")}
    if op == "inf":
        return {"x": float("-inf")}
    if op == "set":
        return {"s": {1, 2, 3}}
    if op == "circular":
        inner = [1, 2]
        inner.append({"back": inner})
        return {"list": inner}
    if op == "headers":
        time.sleep(payload.get("s", 0))
        return {"headers": asya_runtime.current_headers(), "attempt": asya_runtime.current_attempt()}
    if op == "big":
        return "x" * payload["n"]
    if op == "tuple":
        return tuple(payload["values"])
    if op == "sys_exit":
        sys.exit(2)
    if op == "pid":
        return os.getpid()
    raise ValueError("unknown op %r" % op)


async def async_dispatch(payload):
    import asyncio
    op = payload.get("op") if isinstance(payload, dict) else None
    if op == "sleep":
        await asyncio.sleep(payload["s"])
        return {"slept": payload["s"], "loop": id(asyncio.get_running_loop()),
                "thread": threading.current_thread().name}
    if op == "headers":
        await asyncio.sleep(payload.get("s", 0))
        return {"headers": asya_runtime.current_headers()}
    if op == "raise":
        await asyncio.sleep(0)
        raise RuntimeError(payload.get("msg", "async boom"))
    if op == "block":
        time.sleep(payload["s"])  # blocks the event loop on purpose
        return "blocked"
    return payload


def returns_coroutine(payload):
    """A plain function that returns an awaitable: the runtime awaits it."""
    return async_dispatch(payload)
