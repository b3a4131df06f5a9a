"""Each test's verdict beside its round trips' outcomes, and declared expectations (``expect=``).

The plugin feeds every phase report of a test that touched a target through ``TestLog``;
an ``expect={"py3.9": "syntax_error"}`` turns the call phase into an xfail when a round trip
ended that way, and into a strict XPASS failure when none did, so CI fails only on the
*unexpected* cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .report.record import test_record

CRASHED = "???"  # the phase of the report xdist makes for a test whose worker died running it


@dataclass
class _Entry:
    target: str
    verdict: str | None = None
    outcomes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    expected: list[str] = field(default_factory=list)
    reason: str | None = None


def verdict_of(rep: Any) -> str | None:
    """pytest's own classification of one phase report (None: a passing setup or teardown)."""
    xfail = hasattr(rep, "wasxfail")
    if rep.when in ("call", CRASHED):
        if rep.passed:
            return "xpassed" if xfail else "passed"
        if rep.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed"
    if rep.skipped:
        return "xfailed" if xfail else "skipped"
    return "error" if rep.failed else None


def skip_reason(rep: Any) -> str | None:
    if hasattr(rep, "wasxfail"):
        return str(rep.wasxfail) or None
    longrepr = getattr(rep, "longrepr", None)
    if rep.skipped and isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None


class TestLog:
    """Per test id: its target, verdict, the outcomes of its round trips and its duration."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._outcomes: dict[str, list[str]] = {}
        self._targets: dict[str, str] = {}

    def outcome(self, nodeid: str | None, outcome: str, target: str) -> None:
        """A round trip of this test ended in ``outcome`` (or its target was ``unavailable``)."""
        if nodeid is None:
            return
        self._targets.setdefault(nodeid, target)
        seen = self._outcomes.setdefault(nodeid, [])
        if outcome not in seen:
            seen.append(outcome)

    def target(self, nodeid: str) -> str | None:
        """The first target a test without the fixture (a helper's caller) reached."""
        return self._targets.get(nodeid)

    def outcomes(self, nodeid: str) -> list[str]:
        return list(self._outcomes.get(nodeid, []))

    def phase(self, rep: Any, target: str, expected: list[str]) -> None:
        entry = self._entries.setdefault(rep.nodeid, _Entry(target, expected=expected))
        entry.duration_s += float(getattr(rep, "duration", 0.0) or 0.0)
        verdict = verdict_of(rep)
        if verdict is not None and not (verdict == "error" and entry.verdict in ("failed", "error")):
            entry.verdict = verdict  # a teardown error after a failure keeps the failure
            entry.reason = skip_reason(rep) or entry.reason
        elif rep.when == "teardown" and entry.verdict is None:
            entry.verdict = "passed"
        entry.outcomes = self.outcomes(rep.nodeid)

    def records(self) -> list[dict[str, Any]]:
        return [self.record(nodeid) for nodeid in self._entries]

    def record(self, nodeid: str) -> dict[str, Any]:
        e = self._entries[nodeid]
        return test_record(nodeid, e.target, e.verdict or "error", e.outcomes, e.duration_s, e.expected, e.reason)


def apply_expectation(rep: Any, target: str, expected: list[str], outcomes: list[str]) -> None:
    """The call phase of a test that declared ``expect={target: ...}``, judged on its round trips."""
    if rep.when != "call" or not expected or rep.skipped:
        return
    declared = f"expect={{{target!r}: {expected[0]!r}}}" if len(expected) == 1 else \
        f"expect={{{target!r}: {expected!r}}}"
    hit = [o for o in outcomes if o in expected]
    seen = ", ".join(outcomes) or "no round trip at all"
    if hit:
        rep.outcome = "skipped"
        rep.wasxfail = f"expected on {target}: {hit[0]} ({declared})"
    elif rep.passed:
        rep.outcome = "failed"
        rep.longrepr = (f"[XPASS(strict)] now works on {target}: no round trip ended in "
                        f"{' or '.join(expected)} (outcomes: {seen}); remove the expectation {declared}")
    else:
        rep.sections.append(("remote-serial expect",
                             f"{declared} was declared, but the round trips on {target} ended in {seen}: "
                             "this failure is not the expected one"))
