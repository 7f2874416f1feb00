"""No-op handler for benchmarking asya_runtime.py (ASYA_HANDLER=noop_handler.noop)."""


def noop(payload):
    return payload
