"""The functions of the cross-version table: each row a shape users ship (issue 3)."""

from __future__ import annotations

import functools
import linecache

import numpy as np


def make_closure(k):
    def scale(x):
        return x * k

    return scale


double, triple = (lambda x: x * 2), (lambda x: x * 3)  # two lambdas on one line


def _helper(x):
    return x + 1


def uses_helper(x):
    return _helper(x) * 2


def factorial(n):
    return 1 if n < 2 else n * factorial(n - 1)


def tagged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return ("tagged", func(*args, **kwargs))

    return wrapper


@tagged
def decorated(x):
    return x + 1


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x * self.x + self.y * self.y


def point_norm(p):
    return p.norm2()


def numpy_total(a):
    return int(np.sum(a))


def countdown(n):
    yield from range(n, 0, -1)


def kwonly(a, *, scale=3, offset=1):
    return a * scale + offset


def with_match(value):
    match value:
        case [a, b]:
            return a + b
        case _:
            return None


def _from_linecache():
    """A function whose only source is linecache, as IPython and the 3.13 REPL register cells."""
    cell = "def from_cell(x):\n    return x * 7\n"
    name = "<python-input-7>"
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    namespace = {"__name__": "__main__"}
    exec(compile(cell, name, "exec"), namespace)
    return namespace["from_cell"]


def _from_exec():
    namespace = {"__name__": "__main__"}
    exec(compile("def no_source(x):\n    return x\n", "<string>", "exec"), namespace)
    return namespace["no_source"]


# name -> (function, args, kwargs, expected result)
CASES = {
    "closure": (make_closure(3), (14,), {}, 42),
    "lambda": (triple, (5,), {}, 15),
    "nested helper": (uses_helper, (1,), {}, 4),
    "recursive": (factorial, (5,), {}, 120),
    "functools.wraps": (decorated, (1,), {}, ("tagged", 2)),
    "class instance arg": (point_norm, (Point(3, 4),), {}, 25),
    "bound method": (Point(1, 2).norm2, (), {}, 5),
    "numpy argument": (numpy_total, (np.arange(5),), {}, 10),
    "generator function": (countdown, (3,), {}, None),
    "keyword-only defaults": (kwonly, (2,), {"offset": 0}, 6),
    "match statement": (with_match, ([1, 2],), {}, 3),
    "linecache-only source": (_from_linecache(), (6,), {}, 42),
    "exec, no source": (_from_exec(), (1,), {}, 1),
}
