"""A fake Kubernetes API server for tests (a simulation, not Kubernetes). See ../README.md."""

from .server import FakeApiServer  # noqa: F401
