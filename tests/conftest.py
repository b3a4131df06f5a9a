"""Shared test support: the real Docker engine, and one agent per table target."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config):
    """The real engine. Under --remote-strict (CI) its absence is an error, not a skip."""
    from pytest_remote_serial.host.backends.base import StartFailed
    from pytest_remote_serial.host.backends.containers import connect_engine

    try:
        client = connect_engine()
    except StartFailed as exc:
        if pytestconfig.getoption("remote_strict"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    yield client
    client.close()


TABLE_TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]


@pytest.fixture(scope="module")
def table_remotes(docker_client):
    """A ``Remote`` per target of a cross-version table module; module-scoped so that no agent
    outlives its table (other tests assert that a run leaves no container behind)."""
    from helpers import ROOT, remote_on

    from pytest_remote_serial.host.controller import Controller
    from pytest_remote_serial.host.matrix import load_matrix

    ctl = Controller(load_matrix(ROOT).select(TABLE_TARGETS), print)
    ctl.start_all()
    records: list = []
    yield {t: remote_on(ctl, t, 20.0, records.append) for t in TABLE_TARGETS}
    ctl.shutdown()
