"""Shared test support: the real Docker engine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def docker_client(pytestconfig: pytest.Config):
    """The real engine. Under --remote-strict (CI) its absence is an error, not a skip."""
    from pytest_remote_serial.host.backends.base import StartFailed
    from pytest_remote_serial.host.backends.docker import connect_engine

    try:
        client = connect_engine()
    except StartFailed as exc:
        if pytestconfig.getoption("remote_strict"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    yield client
    client.close()
