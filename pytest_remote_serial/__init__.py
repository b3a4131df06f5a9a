"""pytest-remote-serial: prove that your functions survive serialization to another Python.

The public names downstream suites import live here; the layout underneath shows the
split: ``remote/`` runs inside targets, ``host/`` is everything on the test host.
"""

from __future__ import annotations

from .outcomes import (
    DeserializationError,
    MissingModuleError,
    RemoteCallError,
    RemoteError,
    RemoteTimeout,
    ResultError,
    RoundTrip,
    SerializationError,
    SourceIncompatibleError,
    TargetCrashed,
    TargetUnavailable,
)

__version__ = "0.1.0"
__all__ = [
    "DeserializationError", "MissingModuleError", "RemoteCallError", "RemoteError",
    "RemoteTimeout", "ResultError", "RoundTrip", "SerializationError",
    "SourceIncompatibleError", "TargetCrashed", "TargetUnavailable", "__version__",
]
