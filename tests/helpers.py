"""Plain helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def our_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": "pytest-remote-serial.session"})
