"""The object a test gets as ``remote``: call, roundtrip and map on one target."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .host.backends.base import Running
from .host.codecs import get_codec
from .outcomes import RoundTrip

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class CallOptions:
    """What ``@pytest.mark.remote(...)`` sets for a test."""

    serializer: str = "auto"
    targets: tuple[str, ...] | None = None
    gpu: bool = False
    timeout: float = DEFAULT_TIMEOUT
    isolate: bool = True

    @classmethod
    def from_marker(cls, marker: Any) -> CallOptions:
        if marker is None:
            return cls()
        if marker.args:
            raise TypeError("@pytest.mark.remote takes keyword arguments only, e.g. "
                            "@pytest.mark.remote(serializer='source', timeout=10)")
        kwargs = dict(marker.kwargs)
        unknown = set(kwargs) - {"serializer", "targets", "gpu", "timeout", "isolate"}
        if unknown:
            raise TypeError(f"@pytest.mark.remote: unknown argument(s) {', '.join(sorted(unknown))}; "
                            "use serializer, targets, gpu, timeout, isolate")
        if "targets" in kwargs:
            kwargs["targets"] = tuple(kwargs["targets"])
        return cls(**kwargs)


class TargetInfo:
    """``remote.target``: what the test is running against."""

    def __init__(self, running: Running, gpu: bool) -> None:
        self._running = running
        self.name = running.target.name
        self.python = running.python
        self.image = running.image
        self.gpu = gpu

    @property
    def packages(self) -> dict[str, str]:
        return dict(self._running.client.describe()["packages"])

    def __repr__(self) -> str:
        return f"<target {self.name} python={self.python} image={self.image}>"


def resolve_serializer(name: str) -> str:
    """``auto`` is cloudpickle for now; the cross-version ladder replaces this."""
    if name == "auto":
        return "cloudpickle"
    return get_codec(name).name


class Remote:
    def __init__(self, running: Running, options: CallOptions, gpu: bool,
                 record: Callable[[RoundTrip], None], test: str | None = None) -> None:
        self._running = running
        self._options = options
        self._record = record
        self._test = test
        self.target = TargetInfo(running, gpu)

    def roundtrip(self, func: Callable[..., Any], *args: Any, serializer: str | None = None,
                  **kwargs: Any) -> RoundTrip:
        """Serialize, load and call on the target; the record, never a serialization raise."""
        chosen = serializer or self._options.serializer
        rt = self._running.client.roundtrip(
            func, args, kwargs, resolve_serializer(chosen), timeout=self._options.timeout,
            isolate=self._options.isolate)
        rt.test = self._test
        self._record(rt)
        return rt

    def call(self, func: Callable[..., Any], *args: Any, serializer: str | None = None,
             **kwargs: Any) -> Any:
        """The result, or the exception DESIGN §4 names for the outcome."""
        return self.roundtrip(func, *args, serializer=serializer, **kwargs).raise_for_outcome()

    def map(self, func: Callable[..., Any], iterable: Iterable[tuple[Any, ...]],
            serializer: str | None = None) -> list[Any]:
        """Like ``[func(*a) for a in iterable]``, each call on the target, in order."""
        return [self.call(func, *args, serializer=serializer) for args in iterable]

    def __repr__(self) -> str:
        return f"<remote on {self.target.name}>"
