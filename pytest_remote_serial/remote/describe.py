"""What the target is, asked for on demand so that a cold start does not pay for it: its Python,
implementation, platform and installed distributions; and which of a list of modules it lacks.
"""

from __future__ import annotations

import sys

from .envelope import magic_number, python_version


def describe(scan: bool = True) -> dict:
    """``scan`` reads the installed distributions and imports the serializers and numpy for
    their versions (the agent runs it in a throwaway child, see ``processes.in_child``);
    without it, only what is imported already."""
    import platform

    packages: dict = {}
    if scan:
        try:
            from importlib import metadata

            for dist in metadata.distributions():
                name = dist.metadata["Name"]
                if name:
                    packages.setdefault(name, dist.version)
        except Exception:
            pass
    for mod in ("cloudpickle", "dill", "numpy"):
        try:
            packages.setdefault(mod, (__import__(mod) if scan else sys.modules[mod]).__version__)
        except Exception:
            pass
    return {
        "python": python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "magic": magic_number(),
        "packages": packages,
    }


def missing_modules(names: list) -> list:
    import importlib.util

    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing
