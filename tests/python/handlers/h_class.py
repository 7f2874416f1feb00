"""Class handlers for the tests (not a test module)."""
import asyncio
import time

INIT_COUNT = 0


class Counter:
    def __init__(self, start=0, *args, **kwargs):
        global INIT_COUNT
        INIT_COUNT += 1
        time.sleep(0.05)  # "slow model load", done once
        self.count = start
        self.not_callable = "just a string"

    def process(self, payload):
        self.count += 1
        if isinstance(payload, dict) and payload.get("op") == "fanout":
            return [{"n": self.count, "i": i} for i in range(payload["n"])]
        if isinstance(payload, dict) and payload.get("op") == "none":
            return None
        if isinstance(payload, dict) and payload.get("op") == "raise":
            raise RuntimeError("counter failed at %d" % self.count)
        return {"count": self.count, "inits": INIT_COUNT}

    def envelope(self, env):
        self.count += 1
        env["payload"] = {"count": self.count}
        env["route"]["current"] += 1
        return env

    async def aprocess(self, payload):
        await asyncio.sleep(0)
        self.count += 1
        return {"count": self.count}


class NeedsArg:
    def __init__(self, model_path):
        self.model_path = model_path

    def process(self, payload):
        return payload


class RaisingInit:
    def __init__(self):
        raise RuntimeError("cannot load model weights")

    def process(self, payload):
        return payload


class NoInit:
    def process(self, payload):
        return {"noinit": payload}
