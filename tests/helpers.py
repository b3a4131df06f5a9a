"""Plain helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def our_containers(client) -> list[dict]:
    """Summaries (with ``Labels``) of every container the plugin labelled; no racing inspects."""
    return client.api.containers(all=True, filters={"label": "pytest-remote-serial.session"})


def label(container: dict, key: str) -> str | None:
    return (container.get("Labels") or {}).get(f"pytest-remote-serial.{key}")
