"""Raises at import time (not a test module)."""
raise RuntimeError("boom at import time")
