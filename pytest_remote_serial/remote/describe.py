"""What the target is, asked for on demand so that a cold start does not pay for it: its Python,
implementation, platform and installed distributions; and which of a list of modules it lacks.
"""

from __future__ import annotations

import sys

from .envelope import magic_number, python_version


def describe(scan: bool = True) -> dict:
    """``scan`` reads the installed distributions and imports the serializers and numpy for
    their versions (the agent runs it in a throwaway child, see ``processes.in_child``);
    without it, only what is imported already.

    ``packages`` says what a call imports: for the serializers and numpy, the version of the
    module an ``import`` finds here, not what an installed distribution's metadata claims.
    ``injected``: those of them the host brought (its zips); ``shadowed``: the target's own
    versions that an injected one hides (``serializers = "image"`` uses those instead)."""
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
    injected: dict = {}
    shadowed: dict = {}
    for mod in ("cloudpickle", "dill", "numpy"):
        try:
            module = __import__(mod) if scan else sys.modules[mod]
            version = str(module.__version__)
        except Exception:
            continue
        installed = packages.get(mod)
        packages[mod] = version
        if _from_host(module):
            injected[mod] = version
            if installed is not None:
                shadowed[mod] = installed
    return {
        "python": python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "magic": magic_number(),
        "packages": packages,
        "injected": injected,
        "shadowed": shadowed,
    }


HOST_LIBS: list = []  # the host's serializer zips (--lib), set at start (__main__)


def _from_host(module) -> bool:
    """Was ``module`` imported from one of the host's zips (``--lib``)?"""
    import os

    file = os.path.realpath(getattr(module, "__file__", None) or "")
    return any(file.startswith(os.path.realpath(lib) + os.sep) for lib in HOST_LIBS)


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
