"""``remote.map``: the function and every item loaded once, each item then run in a fresh process
forked from the one that loaded them, as many at a time as asked, and one reply with every
item's answer in order.
"""

from __future__ import annotations

import os
import select
import signal
import time

from .buffers import CALL_COPIES, Buffers
from .call import call_and_dump, fresh_random_state, receive_and_load, respond
from .diagnosis import print_exc
from .limits import crash_info, timeout_info
from .processes import reap
from .protocol import CRASH, OK, TIMEOUT
from .wire import Channel


def run_map(channel: Channel, header: dict, status_fd: int | None = None) -> None:
    """``remote.map``: the function and every item are loaded once, here; each item then runs in
    a fresh process forked from this one (isolation as for a call: no item sees another's
    state), up to ``concurrency`` at a time, each under the call timeout. One reply carries
    every item's answer, in order."""
    response, loaded = receive_and_load(channel, header, status_fd)
    if response is None:
        return
    func, items, _ = loaded
    timeout = float(header.get("timeout") or 30)
    answers = _run_items(func, list(items), header, timeout, max(1, int(header.get("concurrency") or 1)))
    out = Buffers()
    kinds: dict = {}
    records = []
    for answer, item_out in answers:
        for i, kind in (answer.pop("buffer_kinds", None) or {}).items():
            kinds[str(len(out) + int(i))] = kind
        answer["nbuf"] = len(item_out)
        out.extend(item_out)
        records.append(answer)
    out.kinds = kinds
    response.update(outcome=OK, items=records)
    respond(channel, response, out, status_fd)


def _run_items(func, items: list, header: dict, timeout: float, concurrency: int) -> list:
    answers: list = [None] * len(items)
    running: dict = {}  # read fd -> (pid, index, deadline)
    exiting: list = []  # answered: reaped without waiting, so the next item need not wait for an exit
    next_item = 0
    while next_item < len(items) or running:
        exiting = reap(exiting)
        while next_item < len(items) and len(running) < concurrency:
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                _item_child(func, items[next_item], header, rfd, wfd)
            os.close(wfd)
            running[rfd] = (pid, next_item, time.monotonic() + timeout)
            next_item += 1
        soonest = min(deadline for _, _, deadline in running.values())
        ready, _, _ = select.select(list(running), [], [], max(0.0, soonest - time.monotonic()))
        for rfd in ready or [fd for fd, (_, _, d) in running.items() if d <= time.monotonic()]:
            pid, index, deadline = running.pop(rfd)
            answer, out, reaped = _item_answer(rfd, pid, timeout, timed_out=not ready)
            answers[index] = (answer, out)
            if not reaped:
                exiting.append(pid)
            os.close(rfd)
    for pid in exiting:
        os.waitpid(pid, 0)
    return answers


def _item_child(func, args, header: dict, rfd: int, wfd: int) -> None:
    try:
        os.close(rfd)
        fresh_random_state()
        CALL_COPIES.reset()
        response: dict = {"phases": {}}
        out = call_and_dump(func, tuple(args), {}, header, response)
        device = CALL_COPIES.as_dict()
        if device is not None:  # only where device arrays travelled
            response["device"] = device
        kinds = getattr(out, "kinds", None)
        if kinds:
            response["buffer_kinds"] = kinds
        Channel(wfd, wfd).send(response, out)
    except BaseException:
        print_exc()
    finally:
        os._exit(0)


def _item_answer(rfd: int, pid: int, timeout: float, timed_out: bool) -> tuple:
    """One item's answer off its pipe, or what its death or its deadline says instead:
    ``(answer, buffers, whether its process was reaped)``; one that answered exits on its own."""
    if not timed_out:
        try:
            answer, out = Channel(rfd, rfd).recv()
            return answer, out, False
        except EOFError:
            pass
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"outcome": TIMEOUT, "phases": {},
                "error": timeout_info(timeout, "item", "its process was killed")}, [], True
    return {"outcome": CRASH, "phases": {}, "error": crash_info(status)}, [], True

