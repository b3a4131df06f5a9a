"""Installed packages a call imported are imported once in the agent's parent, so later call
processes inherit them (numpy costs ~80 ms per child otherwise). Installed means what the target
has before any call: its site folders, the injected serializers and the target's ``paths`` (the
user's library, installed there as on a worker); what a call shipped stays per call. GPU
frameworks never (a CUDA context must not cross a fork), nor a module whose import starts a
thread (a thread does not survive a fork).
"""

from __future__ import annotations

import os
import sys

from .processes import in_child, threads

_NEVER_PRELOAD = {"cupy", "cupyx", "torch", "tensorflow", "jax", "jaxlib", "numba", "pycuda"}
_PRELOAD_MAX = 32


class _Known:
    """What this process had imported when it last looked, and where installed modules live."""

    def __init__(self) -> None:
        self.modules: set = set()
        self.count = 0  # len(sys.modules) when ``modules`` was last brought up to date
        self.site_roots: tuple = ()
        # The host's injected zips (--lib) and the target's paths (--path): their modules are
        # learned like installed ones.
        self.libs: list = []


KNOWN = _Known()


def start() -> None:
    """Once, in the parent: a child must not pay for sysconfig (measured 4.7 ms per call)."""
    KNOWN.site_roots = _find_site_roots()
    mark_known()


def mark_known() -> None:
    KNOWN.modules.update(sys.modules)
    KNOWN.count = len(sys.modules)


def _find_site_roots() -> tuple:
    import sysconfig

    roots = [p for p in {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")} if p]
    roots += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return tuple(os.path.realpath(r) + os.sep for r in roots + KNOWN.libs)


def installed_imports() -> list:
    """The installed top-level modules imported since the parent last looked."""
    if len(sys.modules) == KNOWN.count:  # nothing imported: no scan (its page faults cost a child ~0.3 ms)
        return []
    new = [name for name in set(sys.modules) - KNOWN.modules
           if "." not in name and not name.startswith("_") and name not in _NEVER_PRELOAD]
    found = []
    for name in new:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if file and os.path.realpath(file).startswith(KNOWN.site_roots):
            found.append(name)
    return sorted(found)[:_PRELOAD_MAX]


def preload(names: list) -> None:
    """Import here what a call imported, so later forks have it. Tried in a throwaway child
    first: a module whose import fails, or starts a thread, is never preloaded (a thread does
    not survive a fork, so every fork would lack what a fresh process has)."""
    wanted = [name for name in names if name not in sys.modules and name not in _NEVER_PRELOAD]
    if wanted:
        safe = in_child(lambda: _imports_without_threads(wanted), lambda: [])
        for name in wanted:
            if name not in safe:
                _NEVER_PRELOAD.add(name)  # never again
        for name in safe:
            try:
                __import__(name)
            except BaseException:
                _NEVER_PRELOAD.add(name)
    mark_known()


def _imports_without_threads(names: list) -> list:
    found = []
    for name in names:
        before = threads()
        try:
            __import__(name)
        except BaseException:
            continue
        if threads() == before:
            found.append(name)
    return found
