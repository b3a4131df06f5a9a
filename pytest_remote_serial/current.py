"""Which target an assertion helper runs on, when the caller did not hand it a ``remote``.

Inside a test that uses the ``remote`` fixture: that test's target. Elsewhere in a pytest
run: the plugin's session (same agents, same report). Outside pytest: a controller of our
own, stopped at exit. Like pytest-xdist, the provider is looked up, never imported upward.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import threading
from collections.abc import Callable
from pathlib import Path

from .fixture import CallOptions, Remote
from .host.matrix import LOCAL, load_matrix

_current: contextvars.ContextVar[Remote | None] = contextvars.ContextVar("prs_remote", default=None)
_provider: Callable[[str], Remote] | None = None
_standalone: dict[str, Remote] = {}
_lock = threading.Lock()


def set_current(remote: Remote | None) -> contextvars.Token[Remote | None]:
    return _current.set(remote)


def reset_current(token: contextvars.Token[Remote | None]) -> None:
    _current.reset(token)


def set_provider(provider: Callable[[str], Remote] | None) -> None:
    global _provider
    _provider = provider


def remote_for(target: str | None) -> Remote:
    current = _current.get()
    if current is not None and (target is None or current.target.name == target):
        return current
    name = target or LOCAL
    if _provider is not None:
        return _provider(name)
    return _standalone_remote(name)


def _standalone_remote(name: str) -> Remote:
    from .host.controller import Controller

    with _lock:
        if name not in _standalone:
            matrix = load_matrix(Path.cwd())
            ctl = Controller(matrix.select([name]), lambda message: None)
            atexit.register(ctl.shutdown)
            _standalone[name] = Remote(ctl.get(name), CallOptions(), False, lambda rt: None,
                                       restart=functools.partial(ctl.get, name),
                                       host=functools.partial(remote_for, LOCAL))
        return _standalone[name]
