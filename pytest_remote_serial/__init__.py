"""pytest-remote-serial: prove that your functions survive serialization to another Python.

The public names downstream suites import live here; the layout underneath shows the
split: ``remote/`` runs inside targets, ``host/`` is everything on the test host.
"""

from __future__ import annotations

import pytest

# Before the import below, so pytest shows the helpers' comparisons (issue 4).
pytest.register_assert_rewrite("pytest_remote_serial.assertions")

from .assertions import (  # noqa: E402
    assert_portable,
    assert_roundtrip,
    assert_same_as_host,
    assert_serializable,
    assert_source_recoverable,
)
from .drift import Comparison  # noqa: E402
from .host.downstream import Serializer  # noqa: E402
from .outcomes import (  # noqa: E402
    BehaviourDrift,
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
    "assert_portable", "assert_roundtrip", "assert_same_as_host", "assert_serializable",
    "assert_source_recoverable", "BehaviourDrift", "Comparison", "DeserializationError",
    "MissingModuleError", "RemoteCallError", "RemoteError", "RemoteTimeout", "ResultError",
    "RoundTrip", "SerializationError", "Serializer", "SourceIncompatibleError", "TargetCrashed",
    "TargetUnavailable", "__version__",
]
