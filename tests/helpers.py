"""Plain helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def our_containers(client) -> list[dict]:
    """Summaries (with ``Labels``) of every container the plugin labelled; no racing inspects."""
    return client.api.containers(all=True, filters={"label": "pytest-remote-serial.session"})


def label(container: dict, key: str) -> str | None:
    return (container.get("Labels") or {}).get(f"pytest-remote-serial.{key}")


def remote_on(ctl, name: str, timeout: float = 30.0, record=None):
    """A ``Remote`` on a started Controller's target, as the fixture makes one, outside pytest's."""
    from pytest_remote_serial import current
    from pytest_remote_serial.fixture import CallOptions, Remote

    return Remote(ctl.get(name), CallOptions(timeout=timeout), False, record or (lambda rt: None),
                  host=lambda: current.remote_for("local"))


def unavailable_reason(root: Path, name: str) -> str:
    """Why target ``name`` of the matrix under ``root`` cannot start (it must not)."""
    import pytest

    import pytest_remote_serial as prs
    from pytest_remote_serial.host.controller import Controller
    from pytest_remote_serial.host.matrix import load_matrix

    ctl = Controller(load_matrix(root).select([name]), print)
    try:
        with pytest.raises(prs.TargetUnavailable) as info:
            ctl.get(name)
    finally:
        ctl.shutdown()
    return info.value.reason


def write_matrix(folder: Path, body: str):
    """``body`` as ``matrix/targets.toml`` under ``folder``, loaded."""
    from pytest_remote_serial.host.matrix import load_matrix

    (folder / "matrix").mkdir(exist_ok=True)
    (folder / "matrix" / "targets.toml").write_text(textwrap.dedent(body))
    return load_matrix(folder)


def allocate(mib):
    """Touch ``mib`` MiB, page by page (shipped by source: a call that runs out of memory)."""
    chunks = []
    for _ in range(mib):
        chunks.append(bytearray(1 << 20))
        chunks[-1][::4096] = b"x" * len(chunks[-1][::4096])
    return len(chunks)
