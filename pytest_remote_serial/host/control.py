"""Control flow stays on the host (docs/architecture.md, "The trust boundary").

A call's exception is re-raised in the test that made the call. Some exceptions are not
errors to pytest but orders: ``KeyboardInterrupt`` and ``SystemExit`` end the run, pytest's
``Exit`` ends it with a chosen status, ``Skipped``/``XFailed``/``Failed`` and
``unittest.SkipTest`` decide the test's verdict, ``bdb.BdbQuit`` stops a debugger. A target
may raise or name any of them, so none comes back as itself: each is a ``RemoteCallError``
naming the type and message. A real Ctrl-C on the host is the host's own, and still stops it.
"""

from __future__ import annotations

from typing import Any

from .. import outcomes as oc

# Exceptions that are Exception subclasses and still steer a session (any other that is not an
# Exception, a bare BaseException subclass, steers by definition).
_STEERING = (("unittest", "SkipTest"), ("unittest.case", "SkipTest"), ("bdb", "BdbQuit"),
             ("_pytest.outcomes", "Exit"), ("_pytest.outcomes", "OutcomeException"))


def steers(exc: BaseException) -> bool:
    if not isinstance(exc, Exception):
        return True
    import sys

    for module, name in _STEERING:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def contain(exc: BaseException, error: dict[str, Any], rt: Any) -> BaseException:
    """The exception a call raised, or a ``RemoteCallError`` in place of one that steers."""
    if not steers(exc):
        return exc
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    message = str(exc) if str(exc) else str(error.get("message") or "")
    wrapped = oc.RemoteCallError(
        f"{kind}: {message} (raised on target {rt.target}; it would steer the host's test session, so it "
        "comes back as this error, not as itself)", rt)
    wrapped.remote_type = kind  # type: ignore[attr-defined]
    return wrapped
