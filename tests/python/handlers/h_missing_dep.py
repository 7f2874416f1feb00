"""Imports a dependency that does not exist (not a test module)."""
import definitely_not_installed_dependency_xyz  # noqa: F401


def handler(payload):
    return payload
