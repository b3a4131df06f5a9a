"""``remote.map`` (issue 16): the function ships once; every item runs in a fresh process there."""

from __future__ import annotations

import os
import time

import pytest

SEEN: list = []


def remember(x):
    SEEN.append(x)  # a fresh process per item: never sees another item's append
    return len(SEEN), x * x


def pid_of(_):
    return os.getpid()


def flaky(x):
    if x == 2:
        raise ValueError("two is bad")
    if x == 3:
        os._exit(7)
    return x


def slow(x):
    time.sleep(x)
    return x


def test_map_returns_results_in_order_each_from_a_fresh_process(remote):
    assert remote.map(remember, [(i,) for i in range(20)]) == [(1, i * i) for i in range(20)]
    pids = remote.map(pid_of, [(i,) for i in range(10)])
    assert len(set(pids)) == 10 and os.getpid() not in pids


def test_map_raises_the_first_failure_in_order(remote):
    with pytest.raises(ValueError, match="two is bad"):
        remote.map(flaky, [(1,), (2,), (3,)])


def test_map_roundtrips_give_every_item_its_outcome(remote):
    rts = remote.map(flaky, [(1,), (2,), (3,), (4,)], roundtrips=True)
    assert [rt.outcome for rt in rts] == ["ok", "call_error", "crash", "ok"]
    assert (rts[0].result, rts[3].result) == (1, 4)
    assert rts[2].error["exit_code"] == 7 and isinstance(rts[1].exception, ValueError)
    assert all(rt.serializer == rts[0].serializer for rt in rts)


@pytest.mark.remote(timeout=1)
def test_an_item_past_the_timeout_is_killed_and_the_rest_answer(remote):
    rts = remote.map(slow, [(0,), (5,), (0.01,)], roundtrips=True, concurrency=3)
    assert [rt.outcome for rt in rts] == ["ok", "timeout", "ok"]
    assert remote.call(slow, 0) == 0  # the agent lives on


def test_map_of_nothing_is_empty(remote):
    assert remote.map(pid_of, []) == []


@pytest.mark.docker
@pytest.mark.parametrize("target", ["py3.9", "py3.14"])
def test_map_across_versions_ships_source_once(table_remotes, target):
    rts = table_remotes[target].map(remember, [(i,) for i in range(50)], roundtrips=True)
    assert [rt.result for rt in rts] == [(1, i * i) for i in range(50)]
    assert {rt.serializer for rt in rts} == {"source"}
