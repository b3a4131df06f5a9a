"""Behaviour drift: the same function, another Python or numpy, another answer (issue 15).

Each function here survives the trip fine; what changes is what it computes. With
``compare_host=True`` every ``remote.call`` also runs in a fresh host process, and a
different answer fails the test as ``differs``; ``expect`` declares the targets where that is
known, so the matrix shows the drift column by column and CI fails only on new ones.
"""

import copy
import enum
import fractions
import itertools
from collections import OrderedDict


def float_sum():
    return sum([0.1] * 10)  # 3.12 made sum() of floats compensated: 1.0, not 0.9999999999999999


class Config:
    _name = "cfg"

    @classmethod
    @property
    def name(cls):  # chaining classmethod over property worked 3.9-3.12; 3.13 removed it
        return cls._name


def classmethod_property():
    return repr(Config.name)[:20]


def copied_iterator():
    counter = itertools.count(5)
    clone = copy.copy(counter)  # itertools lost copy/pickle support in 3.14
    return next(clone), next(counter)


class Level(enum.IntEnum):
    HIGH = 5


class Colour(str, enum.Enum):
    RED = "red"


def enum_text():
    return str(Level.HIGH), format(Level.HIGH), format(Colour.RED), f"{Colour.RED}"


def union_repr():
    import typing

    return repr(typing.Optional[int]), repr(typing.Union[int, str])


def fraction_and_ordereddict_text():
    try:
        fraction = format(fractions.Fraction(1, 3), ".3f")  # Fraction learned format specs in 3.12
    except (TypeError, ValueError) as exc:
        fraction = type(exc).__name__
    return fraction, repr(OrderedDict(a=1))  # OrderedDict's repr changed in 3.12


def numpy_scalar_repr():
    import numpy as np

    return repr(np.float64(1.5)), repr(np.int64(3))  # numpy 2 shows the type: np.float64(1.5)


def numpy_promotion():
    import numpy as np

    return str((np.float32(3) + 3.0).dtype)  # NEP 50 (numpy 2): a Python float no longer widens float32
