"""Envelope-mode test handlers (not a test module)."""
import copy
import json
import time


def dispatch(env):
    payload = env.get("payload") if isinstance(env, dict) else None
    op = payload.get("op", "advance") if isinstance(payload, dict) else "advance"
    if op == "advance":
        env["route"]["current"] += 1
        return env
    if op == "return":
        return payload["value"]
    if op == "inspect":
        seen = json.loads(json.dumps(env))
        return {"payload": seen, "route": {"actors": env["route"]["actors"],
                                           "current": env["route"]["current"] + 1}}
    if op == "erase_inplace":
        # Edits the input in place so that it still "matches" itself: the validation must
        # compare with a copy taken before the handler ran.
        del env["route"]["actors"][0]
        return env
    if op == "rename_inplace":
        env["route"]["actors"][0] = "renamed"
        env["route"]["current"] += 1
        return env
    if op == "extend":
        env["route"]["actors"].extend(["x", "y"])
        env["route"]["current"] += 1
        return env
    if op == "fanout":
        outs = []
        for i in range(payload["n"]):
            e = copy.deepcopy(env)
            e["payload"] = {"i": i}
            e["route"]["current"] += 1
            outs.append(e)
        return outs
    if op == "sleep":
        time.sleep(payload["s"])
        env["route"]["current"] += 1
        return env
    raise ValueError("unknown op %r" % op)


def end_handler(env):
    """Like the crew handlers: validation off, returns {}."""
    if not isinstance(env, dict) or "id" not in env:
        raise ValueError("envelope without id")
    return {}
