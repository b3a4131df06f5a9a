"""A target that starts but cannot serve is ``unavailable`` with its cause, never a crash blamed on
the user's first function: the agent's hello is followed by one self-check call
(``AgentClient.self_check``), and an agent that closes before its hello is named with its own
account (its output, the container's exit).
"""

from __future__ import annotations

import socket
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import unavailable_reason

from pytest_remote_serial.host.backends.base import StartFailed, ready
from pytest_remote_serial.host.client import AgentClient
from pytest_remote_serial.host.transport import SocketChannel
from pytest_remote_serial.remote import serve
from pytest_remote_serial.remote.wire import Channel

# docker-init and the agent's parent: no process is left for the spare every call runs in.
NO_ROOM = """
    extends = "default"
    [targets."py3.11"]
    pids = 2
"""


def write_matrix(folder: Path, body: str) -> None:
    (folder / "matrix").mkdir(exist_ok=True)
    (folder / "matrix" / "targets.toml").write_text(textwrap.dedent(body))


@pytest.mark.docker
def test_a_target_that_cannot_fork_a_call_process_is_unavailable_naming_the_limit(docker_client, tmp_path):
    write_matrix(tmp_path, NO_ROOM)
    reason = unavailable_reason(tmp_path, "py3.11")
    assert "the agent of py3.11 said hello but cannot serve a call" in reason, reason
    assert "could not start a process for the call" in reason and "pids limit (2)" in reason, reason


@pytest.mark.docker
def test_such_a_target_is_skipped_with_its_cause_and_an_error_under_strict(docker_client, pytester):
    write_matrix(pytester.path, NO_ROOM)
    pytester.makepyfile(test_x="def test_x(remote):\n    assert remote.call(abs, -1) == 1\n")
    skipped = pytester.runpytest_subprocess("--remote-targets=py3.11", "-rs", "-p", "no:cacheprovider")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*py3.11*unavailable*cannot serve a call*pids limit (2)*"])
    assert "TargetCrashed" not in skipped.stdout.str()
    strict = pytester.runpytest_subprocess("--remote-targets=py3.11", "--remote-strict", "-p", "no:cacheprovider")
    strict.assert_outcomes(errors=1)
    strict.stdout.fnmatch_lines(["*cannot serve a call*"])


def _socket_ends() -> tuple[SocketChannel, socket.socket]:
    host, far = socket.socketpair()
    return SocketChannel(host), far


def test_an_agent_that_closes_before_its_hello_is_named_with_its_own_account():
    """The cause is what the agent printed (PyPy 7.3 without os.writev died writing its hello)."""
    host, far = _socket_ends()
    far.close()
    account = "its output: AttributeError: module 'os' has no attribute 'writev'"
    with pytest.raises(StartFailed) as info:
        ready(lambda: AgentClient(host, "t"), "t", lambda: account)
    message = str(info.value)
    assert message.startswith("the agent of t did not say hello: peer closed the connection"), message
    assert message.endswith(account)


def test_an_agent_that_says_hello_and_then_dies_is_unavailable_not_a_crash():
    host, far = _socket_ends()
    agent = Channel(far.fileno(), far.fileno())

    def hello_then_die() -> None:
        agent.send(serve.hello())
        agent.recv_header()  # the self-check call's header: then the agent is gone
        far.close()

    thread = threading.Thread(target=hello_then_die)
    thread.start()
    with pytest.raises(StartFailed) as info:
        ready(lambda: AgentClient(host, "t"), "t", lambda: "the container ended: exit code 1")
    thread.join()
    message = str(info.value)
    assert "the agent of t said hello but cannot serve a call: crash (agent_lost)" in message, message
    assert message.endswith("the container ended: exit code 1")
    assert "Python ?" not in message


def test_an_agent_that_serves_passes_its_self_check(remote):
    """The check is the call every isolated call is: a spare, plain pickle, abs(-7)."""
    assert remote._running.client.self_check() is None
