"""A target that starts but cannot serve is ``unavailable`` with its cause, never a crash blamed on
the user's first function: the agent's hello is followed by one self-check call
(``AgentClient.self_check``), and an agent that closes before its hello is named with its own
account (its output, the container's exit).
"""

from __future__ import annotations

import dataclasses
import os
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


# At pids = 2, runc's own start-up threads count against the limit too, and `docker start` fails
# now and then before the agent runs. That start names the limit as well (tested below); for the
# agent's own account, a start the runtime refused is tried again.
RUNTIME_REFUSED = "the container could not start:"


def agent_reason(root: Path, name: str, tries: int = 5) -> str:
    for _ in range(tries):
        reason = unavailable_reason(root, name)
        if not reason.startswith(RUNTIME_REFUSED):
            return reason
        assert "pids limit (2) also counts the container runtime's own start-up threads" in reason, reason
    pytest.fail(f"the runtime refused to start {name} {tries} times: {reason}")


@pytest.mark.docker
def test_a_target_that_cannot_fork_a_call_process_is_unavailable_naming_the_limit(docker_client, tmp_path):
    write_matrix(tmp_path, NO_ROOM)
    reason = agent_reason(tmp_path, "py3.11")
    assert "the agent of py3.11 said hello but cannot serve a call" in reason, reason
    assert "could not start a process for the call" in reason and "pids limit (2)" in reason, reason


@pytest.mark.docker
def test_such_a_target_is_skipped_with_its_cause_and_an_error_under_strict(docker_client, pytester):
    write_matrix(pytester.path, NO_ROOM)
    pytester.makepyfile(test_x="def test_x(remote):\n    assert remote.call(abs, -1) == 1\n")
    skipped = pytester.runpytest_subprocess("--remote-targets=py3.11", "-rs", "-p", "no:cacheprovider")
    skipped.assert_outcomes(skipped=1)
    # Either cause names the limit: the agent's (no process for the call) or the runtime's.
    skipped.stdout.re_match_lines([r".*py3\.11.*unavailable.*(cannot serve a call|could not start).*pids limit \(2\)"])
    assert "TargetCrashed" not in skipped.stdout.str()
    strict = pytester.runpytest_subprocess("--remote-targets=py3.11", "--remote-strict", "-p", "no:cacheprovider")
    strict.assert_outcomes(errors=1)
    strict.stdout.re_match_lines([r".*(cannot serve a call|could not start).*"])


@pytest.mark.docker
@pytest.mark.parametrize("pids", [512, 2])
def test_a_container_the_runtime_refuses_to_start_is_removed_and_named_with_the_engine_s_words(docker_client, tmp_path,
                                                                                                pids):
    """Created, then refused at `docker start` (no init, a command missing from the image): the
    container goes at once, not at the next run's reap, and the cause is the engine's; under a
    tight pids limit, which the runtime's own start counts against, the limit is named too."""
    from pytest_remote_serial.host.backends.containers import L_SESSION, DockerBackend
    from pytest_remote_serial.host.matrix import load_matrix

    write_matrix(tmp_path, 'extends = "default"\n')
    target = dataclasses.replace(load_matrix(tmp_path).targets["py3.11"], pids=pids)
    backend = DockerBackend(docker_client, f"refused-start-{os.getpid()}", print)
    image, _ = backend.builder.ensure(target)
    kwargs = backend._run_kwargs(target, image, ["/no/such/python"])
    kwargs["init"] = False  # with docker-init, the exec fails inside a started container instead
    with pytest.raises(StartFailed) as info:
        backend._create(target, kwargs)
    reason = str(info.value)
    assert reason.startswith(RUNTIME_REFUSED) and "/no/such/python" in reason, reason
    hint = "the target's pids limit (2) also counts the container runtime's own start-up threads: raise `pids`"
    assert (hint in reason) == (pids == 2), reason  # 512 is no tight limit: there the hint would mislead
    assert docker_client.containers.list(all=True, filters={"label": f"{L_SESSION}={backend.session}"}) == []


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
