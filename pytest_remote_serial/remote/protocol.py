"""What the two ends say to each other: the protocol's version, its message kinds, the outcomes
a reply may carry, and the shape of the records that cross (docs/architecture.md, "Wire").

Both ends import this module: a change here is a protocol change (bump ``PROTOCOL``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a cold start ~5 ms; the records below exist for mypy only

PROTOCOL = 5  # 5: the envelope and the hello name the implementation and its cache tag (4: a loader)

# A frame's op code is its kind's index here (0: a kind named in the JSON rest instead).
OPS = ("", "hello", "call", "result", "echo", "map", "describe", "find_modules", "error")
OP_CODE = {name: i for i, name in enumerate(OPS) if name}

# Every round trip ends in exactly one of these (docs/architecture.md, "Outcomes"). The host
# maps each to the exception ``remote.call`` raises; the agent writes them in its replies.
OK = "ok"
DUMP_ERROR = "dump_error"
LOAD_ERROR = "load_error"
MISSING_MODULE = "missing_module"
SYNTAX_ERROR = "syntax_error"
CALL_ERROR = "call_error"
RESULT_ERROR = "result_error"
CRASH = "crash"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
OUTCOMES = (OK, DUMP_ERROR, LOAD_ERROR, MISSING_MODULE, SYNTAX_ERROR, CALL_ERROR, RESULT_ERROR, CRASH,
            TIMEOUT, UNAVAILABLE)

# The phases of a call the agent times, in a result frame's binary lead (see wire.encode_frame).
REMOTE_PHASES = ("load", "call", "result")

if TYPE_CHECKING:
    from typing import TypedDict

    class ErrorInfo(TypedDict, total=False):
        """``error`` of a reply: what went wrong, where, and on which Python."""

        phase: str  # load, call or result
        type: str  # module.qualname of the exception, or crash / timeout / bad_reply ...
        message: str
        traceback: str
        python: str
        module: str  # missing_module: the module the target lacks
        diagnosis: str  # the real cause, named from the envelope
        signal: int
        exit_code: int
        oom: bool
        memory_limit: int | None
        timeout: float
        limit_hit: dict[str, int | None]

    class Reply(TypedDict, total=False):
        """The header of a ``result`` frame (op and id are in the binary prefix)."""

        op: str
        id: int | None
        outcome: str
        error: ErrorInfo
        phases: dict[str, float]
        envelope: dict[str, object]
        result_type: str
        result_codec: str  # "json" where the result travels as JSON
        device: dict[str, object]
        limit_hit: dict[str, int | None]
        buffer_kinds: dict[str, str]
        items: list[dict[str, object]]  # a map's per-item answers

    class Hello(TypedDict):
        """The agent's first frame: what the host checks before it sends anything."""

        op: str
        protocol: int
        python: str
        cpus: int
        magic: int
        pid: int
        pickle_protocol: int
