"""Shapes the capsule once carried less faithfully than the module imported natively (issue 25).

A plain module (no pytest rewriting, no lazy annotations), so each function here is what real
code looks like; ``test_capsule_fidelity.py`` ships them and compares with the host.
"""

import _collections_abc  # noqa: F401 (looked up by name in by_globals_renamed_module)
import contextvars
import pickle
import struct
import sys
import threading
import typing
import weakref

import pytest


class Outer:
    class Inner:
        pass


def nested_qualname():
    return Outer.Inner.__qualname__, repr(Outer.Inner).split(".")[-1]


def _counter_pair():
    count = 0

    def inc():
        nonlocal count
        count += 1
        return count

    def peek():
        return count

    return inc, peek


INC, PEEK = _counter_pair()


def shared_cell():
    """``inc`` and ``peek`` share one cell: what one changes, the other sees."""
    before = PEEK()
    INC()
    INC()
    return PEEK() - before


class Ordered:
    zeta = 1
    alpha = 2

    def middle(self):
        return 3

    beta = 4


def class_dict_order():
    return [name for name in vars(Ordered) if not name.startswith("__")]


@typing.runtime_checkable
class Closable(typing.Protocol):
    def close(self) -> None: ...


class Sized2(typing.Protocol):
    size: int

    def grow(self) -> int: ...


class File:
    def close(self):
        return None


class Grower(Sized2):
    def __init__(self):
        self.size = 1

    def grow(self):
        self.size += 1
        return self.size


def protocol_ops():
    try:
        Sized2()
    except TypeError:
        abstract = "protocols cannot be instantiated"
    else:
        abstract = "instantiated"
    return isinstance(File(), Closable), isinstance(1, Closable), Grower().grow(), abstract


class Movie(typing.TypedDict):
    title: str
    year: int


class Rated(Movie, total=False):
    stars: float


def typeddict_ops():
    rated = Rated(title="t", year=1999)
    return (rated, Movie(title="m", year=2000), sorted(Rated.__required_keys__),
            sorted(Rated.__optional_keys__), Rated.__total__, sorted(Rated.__annotations__))


class Record:
    def __init__(self, value):
        self.value = value


def pickles_own_instance():
    """An instance of this module's own class, pickled inside the call (plain pickle finds the
    class by its module's name)."""
    return pickle.loads(pickle.dumps(Record(3))).value


def cloudpickles_own_instance():
    """cloudpickle inside the call carries this module by value, as it did before the module
    was registered there."""
    import cloudpickle

    data = cloudpickle.dumps(Record(4))
    return b"_make_skeleton_class" in data, cloudpickle.loads(data).value  # by value


SECRET = 42
LIMIT = {"max": 7}
PENDING = (i for i in range(3))  # no pickle carries a generator: it must not sink the others


def _factorial_maker():
    def factorial(n):
        return 1 if n <= 1 else n * factorial(n - 1)  # its own cell holds it

    return factorial


FACTORIAL = _factorial_maker()


def recursive_closure(n):
    return FACTORIAL(n)


def by_globals_lock():
    """A global made afresh is there for a lookup by name too."""
    lock = globals()["LOCK"]
    with lock:
        return lock.locked(), type(globals()["POOL"].lock) is type(lock)


def by_globals():
    return globals()["SECRET"]


def by_globals_renamed_module():
    """A module whose __name__ is not the name it is imported as (_collections_abc calls itself
    collections.abc, which on 3.9 and 3.11 has no dict_items), looked up by name."""
    return isinstance({}.items(), globals()["_collections_abc"].dict_items)


def by_eval():
    return eval("SECRET + LIMIT['max']")


def by_sys_modules():
    return sys.modules[__name__].SECRET


def annotated(record: "Record", limit: "int") -> "dict":
    return {}


def by_type_hints():
    return sorted((name, hint.__name__) for name, hint in typing.get_type_hints(annotated).items())


@pytest.mark.docker
def marked(x):
    return x * 2


@pytest.mark.docker
class MarkedClass:
    def twice(self, x):
        return 2 * x


def uses_marked_class(x):
    return MarkedClass().twice(x)


LOCK = threading.Lock()
RLOCK = threading.RLock()
EVENT = threading.Event()
CONDITION = threading.Condition(LOCK)
SEMAPHORE = threading.BoundedSemaphore(3)
HEADER = struct.Struct("<iH")
REQUEST_ID = contextvars.ContextVar("request_id", default="none")
NO_DEFAULT = contextvars.ContextVar("no_default")
CACHE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
KEYED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MEMBERS: weakref.WeakSet = weakref.WeakSet()


class Pool:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = [1, 2]

    def take(self):
        with self.lock:
            return self.items.pop()


POOL = Pool()


def beyond_cloudpickle():
    with LOCK:
        locked_inside = LOCK.locked()
    with RLOCK, RLOCK:
        pass
    with CONDITION:
        CONDITION.notify_all()
    with SEMAPHORE:
        pass
    EVENT.set()
    CACHE["r"] = record = Record(1)
    KEYED[record] = 1
    MEMBERS.add(record)
    try:
        NO_DEFAULT.get()
        no_default = "has one"
    except LookupError:
        no_default = "LookupError"
    return (locked_inside, LOCK.locked(), EVENT.is_set(), HEADER.size, HEADER.format,
            HEADER.unpack(HEADER.pack(5, 6)), REQUEST_ID.name, REQUEST_ID.get(), no_default,
            len(CACHE), len(KEYED), len(MEMBERS), POOL.take())


def fresh_state():
    return LOCK.locked(), EVENT.is_set(), CONDITION._lock is LOCK


def lock_and_generator():
    """Two globals: the lock travels (made afresh), the generator cannot: the error names it."""
    with LOCK:
        return next(PENDING)
