"""Ordinary user code across Python versions (issue 11): the shapes real codebases have.

Everything here is defined in this *test module*, so pytest rewrites its asserts, as it does
for every user's helpers. Each shape runs on every table target under ``source`` and ``auto``
(and the bytecode serializers where they meet a rewritten assert); the expected outcome of
each cell is the written rule in ``expected``, and an ``ok`` cell must return exactly what the
host computes: a capsule that answers differently from the host is the worst defect there is.
"""

from __future__ import annotations

import _collections_abc
import abc
import asyncio
import collections
import dataclasses
import enum
import functools
import gc
import os
import platform
import sys
import threading
import types
import typing
import weakref

import pytest
from capsule_eager import options_level, union_annotation
from capsule_future import annotations_of, config_first, make_job

# ----------------------------------------------------------------------------- classes mutated later


class Settings:
    debug = False


Settings.debug = True  # after the class statement


def read_debug():
    return Settings.debug


class Plugin:
    registry: typing.ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Plugin.registry[cls.__name__] = cls


class CsvPlugin(Plugin):
    pass


class JsonPlugin(Plugin):
    pass


def plugin_names():
    return sorted(Plugin.registry)


HANDLERS: dict = {}


def handler(name):
    def register(cls):
        HANDLERS[name] = cls
        return cls

    return register


@handler("get")
class GetHandler:
    def run(self):
        return "got"


def run_handler(name):
    return HANDLERS[name]().run()


# ----------------------------------------------------------------------------- same names, positions


def mk1():
    class W:
        def who(self):
            return "first"

    return W


def mk2():
    class W:
        def who(self):
            return "second"

    return W


W1, W2 = mk1(), mk2()


def both_ws():
    return W1().who(), W2().who()


if os.sep == "/":
    def alternate():
        return "posix branch"
else:  # pragma: no cover
    def alternate():
        return "other branch"

try:
    import tomllib as _toml_mod  # noqa: F401

    def which_toml():
        return "stdlib"
except ImportError:  # pragma: no cover
    def which_toml():
        return "missing"


pair = (lambda x: x + 100, lambda x: x + 200)  # two lambdas on one line

spanning = (lambda a,  # noqa: E731 - the shape being tested
            b: a * b)


# ----------------------------------------------------------------------------- globals and cells

COUNTER = 0


def bump():
    global COUNTER
    COUNTER += 1
    return COUNTER


def bump_twice_then_read():
    bump()
    bump()
    return COUNTER


lock = threading.Lock()


class Door:
    def __init__(self):
        self.lock = "open"  # an attribute named like the unpicklable global

    def state(self):
        return self.lock


def door_state():
    return Door().state()


def empty_cell():
    def inner():
        return later  # noqa: F821 - bound only after inner exists

    try:
        inner()
    except NameError as exc:
        return "NameError: " + str(exc).split("'")[1]
    later = 1  # noqa: F841
    return "bound"


def three_levels(a):
    def middle(b):
        def inner(c):
            return a * 100 + b * 10 + c

        return inner

    return middle


def counter():
    count = 0

    def step():
        nonlocal count
        count += 1
        return count

    return step


def uses_file():
    return os.path.basename(__file__)


def text_constant():
    return """first line
  indented line
last"""


def uses_comprehension(n):
    return [COUNTER * 0 + i * i for i in range(n) if i % 2 == 0]


def mutable_default(x, acc=[]):  # noqa: B006 - the shape being tested
    acc.append(x)
    return list(acc)


def class_body_global():
    class Local:
        kind = collections.OrderedDict.__name__  # a global read by the class body (LOAD_NAME)

    return Local.kind


def renamed_stdlib_module():
    return _collections_abc.dict_items.__name__  # the module calls itself collections.abc from 3.10


def posonly_kwonly(a, b, /, c, *, d=4):
    return (a, b, c, d)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def annotated_here(x: int, y: str = "s") -> dict:
    return {"x": x, "y": y}


def annotations_here():
    return annotated_here.__annotations__


# ----------------------------------------------------------------------------- asserts in a test module


def checked_double(x):
    assert isinstance(x, int), "x must be an int"
    assert x >= 0
    return x * 2


def failing_assert(x):
    assert x > 10, "x must exceed 10"
    return x


def make_checker(limit):
    def check(x):
        assert x == limit
        return x * 2

    return check


def failing_plain_assert(x):
    assert x == 3
    return x


# ----------------------------------------------------------------------------- library-generated code


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0

    def norm2(self):
        return self.x * self.x + self.y * self.y


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    size: int = 1


@dataclasses.dataclass(order=True)
class Version:
    major: int
    minor: int = 0


@dataclasses.dataclass
class Basket:
    items: list = dataclasses.field(default_factory=list)
    label: str = dataclasses.field(default="b", repr=False)


@dataclasses.dataclass
class Point3(Point):
    z: int = 0


@dataclasses.dataclass(slots=True)
class Slotted:
    a: int
    b: int = 2


def dataclass_ops():
    p = Point(3, 4)
    f = Frozen("f")
    b = Basket()
    b.items.append(1)
    return (p.norm2(), repr(p), p == Point(3, 4), hash(f) == hash(Frozen("f")), Version(1, 2) < Version(2),
            repr(b), Point3(1, 2, 3).norm2(), dataclasses.astuple(Point3(1, 2, 3)))


def frozen_assignment():
    f = Frozen("f")
    try:
        f.name = "g"
    except dataclasses.FrozenInstanceError:
        return "frozen"
    return "mutable"


def slotted_ops():
    s = Slotted(1)
    return (s.a + s.b, hasattr(s, "__dict__"), repr(s))


def point_norm(p):
    return p.norm2()


def make_point(x):
    return Point(x, x + 1)


class Pair(typing.NamedTuple):
    left: int
    right: int = 0

    def total(self):
        return self.left + self.right


Coord = collections.namedtuple("Coord", "lat lon", defaults=[0.0])


def namedtuple_ops():
    p = Pair(1)
    c = Coord(1.5)
    return (p.total(), repr(p), p._replace(right=5), Pair._make([2, 3]), p._asdict(), repr(c), c.lon, Coord._fields)


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    CRIMSON = 1  # an alias

    def describe(self):
        return f"{self.name.lower()}={self.value}"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 5


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Mode(str, enum.Enum):  # noqa: UP042 - the mixin shape real code has
    READ = "r"
    WRITE = "w"


class Planet(enum.Enum):
    EARTH = (5.97, 6.37)
    MARS = (0.642, 3.39)

    def __init__(self, mass, radius):
        self.mass, self.radius = mass, radius


class Coin(enum.Enum):
    def __new__(cls, value, label):
        member = object.__new__(cls)
        member._value_ = value
        member.label = label
        return member

    PENNY = (1, "penny")
    DIME = (10, "dime")


def enum_member_attributes():
    return Planet.MARS.radius, Planet((0.642, 3.39)).name, Coin(10).label, [c.label for c in Coin]


def enum_ops():
    return (Color.RED.describe(), Color.CRIMSON is Color.RED, Color(2).name, [c.name for c in Color],
            Level.HIGH > Level.LOW, int(Level.HIGH) + 1, (Perm.R | Perm.W).value, Perm.R in (Perm.R | Perm.X),
            Mode("w").name, Mode.READ == "r")


def enum_result():
    return Color.GREEN


from enum import EnumType as _EnumType  # noqa: E402 - 3.11's name; 3.9 and 3.10 call it EnumMeta


def is_enum_class(obj):
    return isinstance(obj, _EnumType), isinstance(Color, _EnumType)


T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    def __init__(self, item: T):
        self.item = item

    def get(self) -> T:
        return self.item


def generic_ops():
    return Box[int](3).get(), Box.__parameters__ == (T,), T.__name__


@functools.lru_cache(maxsize=32)
def slow_square(n):
    return n * n


@functools.cache
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def cached_ops():
    return slow_square(12), fib(30), slow_square.cache_info().maxsize


@functools.singledispatch
def describe(obj):
    return "object"


@describe.register
def _(obj: int):
    return "int"


@describe.register(list)
def _describe_list(obj):
    return "list of %d" % len(obj)


def dispatch_ops():
    return describe(1), describe([1, 2]), describe("s")


class Circle:
    def __init__(self, r):
        self.r = r

    @functools.cached_property
    def area(self):
        return 3 * self.r * self.r


def cached_property_ops():
    c = Circle(2)
    return c.area, c.area, "area" in vars(c)


class Cell:
    def __init__(self):
        self._v = 0

    def _set(self, v):
        self._v = v

    set_three = functools.partialmethod(_set, 3)


def partialmethod_ops():
    c = Cell()
    c.set_three()
    return c._v


# ----------------------------------------------------------------------------- classes


def local_class_factory(base_value):
    class Local:
        def value(self):
            return base_value * 2

    return Local


def local_class_value():
    return local_class_factory(21)().value()


def local_super():
    class Base:
        def hello(self):
            return "base"

    class Child(Base):
        def hello(self):
            return "child+" + super().hello()

    return Child().hello()


class Grand:
    def who(self):
        return ["grand"]


class Parent(Grand):
    def who(self):
        return ["parent", *super().who()]


class Kid(Parent):
    def who(self):
        return ["kid", *super().who()]


def super_chain():
    return Kid().who()


class Registry:
    def __init__(self):
        self.names = ["a"]

    def names_of_singleton(self):
        return REGISTRY.names + ["via singleton"]


REGISTRY = Registry()


def singleton_ops():
    return REGISTRY.names_of_singleton()


class Temperature:
    def __init__(self, c):
        self._c = c

    @property
    def f(self):
        return self._c * 9 / 5 + 32

    @staticmethod
    def unit():
        return "C"

    @classmethod
    def zero(cls):
        return cls(0)


def property_ops():
    return Temperature(100).f, Temperature.unit(), Temperature.zero().f


class Slots:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a, self.b = 1, 2


def slots_ops():
    s = Slots()
    return s.a + s.b, hasattr(s, "__dict__")


class Connection:
    """A finalizer: PyPy calls one only if the class was created with it (not set afterwards)."""

    closed: list = []

    def __init__(self, name):
        self.name = name

    def __del__(self):
        Connection.closed.append(self.name)


class PooledConnection(Connection):
    pass


def finalizer_ops():
    del Connection.closed[:]
    Connection("direct")
    PooledConnection("pooled")  # inherits the finalizer
    gc.collect()  # PyPy finalizes at a collection, CPython when the last reference went
    return sorted(Connection.closed)


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    def double(self):
        return 2 * self.area()


class Square(Shape):
    def area(self):
        return 9


def abc_ops():
    try:
        Shape()
    except TypeError:
        abstract = "abstract"
    else:
        abstract = "instantiable"
    return abstract, Square().double()


class Meta(type):
    def __new__(mcs, name, bases, ns):
        ns["made_by"] = "Meta"
        return super().__new__(mcs, name, bases, ns)


class WithMeta(metaclass=Meta):
    pass


def metaclass_ops():
    return WithMeta.made_by, type(WithMeta).__name__


def add_greeting(cls):
    def greet(self):
        return "hi from " + type(self).__name__

    cls.greet = greet
    return cls


@add_greeting
class Greeter:
    pass


def class_decorator_ops():
    return Greeter().greet()


def repeat(times):
    def deco(func):
        @functools.wraps(func)
        def wrapper(*args):
            return [func(*args) for _ in range(times)]

        return wrapper

    return deco


@repeat(3)
def shout(word):
    return word.upper()


class AppError(Exception):
    def __init__(self, code):
        super().__init__(f"code {code}")
        self.code = code


def raises_app_error(code):
    raise AppError(code)


# ----------------------------------------------------------------------------- data cloudpickle carries

MAPPING = types.MappingProxyType({"k": 1})


def data_ops(sm, cm, keys, proxy, ws_len):
    return (sm.__func__(2), type(cm).__name__, sorted(keys), dict(proxy), ws_len)


def _static_target(x):
    return x * 5


def weakset_len(ws, keepers):
    """A weak set holds nothing by itself: its members live only while ``keepers`` holds them."""
    return len(ws), len(keepers)


_KEEP = [Temperature(1), Temperature(2)]


# ----------------------------------------------------------------------------- async, generators


async def fetch(x):
    await asyncio.sleep(0)
    return x + 1


def run_async(x):
    return asyncio.run(fetch(x))


def countdown(n):
    yield from range(n, 0, -1)


def drain(n):
    return list(countdown(n))


# ----------------------------------------------------------------------------- syntax by version


def uses_match(cmd):
    match cmd.split():
        case ["go", direction]:
            return direction
        case _:
            return None


# name -> (function, args, kwargs)
SHAPES: dict[str, tuple[typing.Callable, tuple, dict]] = {
    "class attribute set later": (read_debug, (), {}),
    "__init_subclass__ registry": (plugin_names, (), {}),
    "class decorator registry": (run_handler, ("get",), {}),
    "two local classes, one name": (both_ws, (), {}),
    "if/else alternate definitions": (alternate, (), {}),
    "try/except definitions": (which_toml, (), {}),
    "two lambdas on one line": (pair[1], (1,), {}),
    "lambda spanning lines": (spanning, (6, 7), {}),
    "global rebound elsewhere": (bump_twice_then_read, (), {}),
    "attribute named like a lock": (door_state, (), {}),
    "empty closure cell": (empty_cell, (), {}),
    "three nested closures": (three_levels(1)(2), (3,), {}),
    "nonlocal counter": (counter(), (), {}),
    "__file__ global": (uses_file, (), {}),
    "multi-line string constant": (text_constant, (), {}),
    "comprehension": (uses_comprehension, (7,), {}),
    "mutable default": (mutable_default, (1,), {}),
    "positional-only, keyword-only": (posonly_kwonly, (1, 2, 3), {}),
    "global read in a nested class body": (class_body_global, (), {}),
    "stdlib module renamed (_collections_abc)": (renamed_stdlib_module, (), {}),
    "mutual recursion": (is_even, (10,), {}),
    "function annotations": (annotations_here, (), {}),
    "assert helper (test module)": (checked_double, (21,), {}),
    "failing assert with message": (failing_assert, (1,), {}),
    "failing plain assert": (failing_plain_assert, (2,), {}),
    "dataclasses": (dataclass_ops, (), {}),
    "frozen dataclass": (frozen_assignment, (), {}),
    "slots dataclass": (slotted_ops, (), {}),
    "dataclass argument": (point_norm, (Point(3, 4),), {}),
    "dataclass result": (make_point, (1,), {}),
    "NamedTuple and namedtuple": (namedtuple_ops, (), {}),
    "Enum, IntEnum, Flag, str mixin": (enum_ops, (), {}),
    "enum result": (enum_result, (), {}),
    "enum members with __init__ / __new__": (enum_member_attributes, (), {}),
    "stdlib name that moved (enum.EnumType)": (is_enum_class, (Level,), {}),
    "Generic[T] and TypeVar": (generic_ops, (), {}),
    "lru_cache and cache": (cached_ops, (), {}),
    "singledispatch": (dispatch_ops, (), {}),
    "cached_property": (cached_property_ops, (), {}),
    "partialmethod": (partialmethod_ops, (), {}),
    "local class over arguments": (local_class_value, (), {}),
    "local base class with super()": (local_super, (), {}),
    "super() chain": (super_chain, (), {}),
    "module singleton in methods": (singleton_ops, (), {}),
    "property, static, classmethod": (property_ops, (), {}),
    "__slots__ class": (slots_ops, (), {}),
    "class with a finalizer (__del__)": (finalizer_ops, (), {}),
    "abstract base class": (abc_ops, (), {}),
    "metaclass": (metaclass_ops, (), {}),
    "class decorator adds a method": (class_decorator_ops, (), {}),
    "decorator factory": (shout, ("hey",), {}),
    "user exception raised": (raises_app_error, (7,), {}),
    "staticmethod, classmethod, views, mappingproxy, WeakSet": (
        data_ops, (staticmethod(_static_target), classmethod(_static_target), {"a": 1, "b": 2}.keys(), MAPPING,
                   len(_KEEP)), {}),
    "WeakSet argument with its members": (weakset_len, (weakref.WeakSet(_KEEP), _KEEP), {}),
    "async def": (run_async, (1,), {}),
    "generator drained": (drain, (4,), {}),
    "future annotations, X | None in a class": (config_first, ([3, 4],), {}),
    "future annotations kept as strings": (annotations_of, (), {}),
    "future-annotated dataclass": (make_job, ("j",), {}),
    "X | None evaluated at definition": (union_annotation, (5,), {}),
    "X | None in a class body": (options_level, (3,), {}),
    "match statement": (uses_match, ("go north",), {}),
}

TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]
# cloudpickle (auto's first rungs on the host's minor) rebuilds a class without its __slots__ (the
# instances get a __dict__) and makes an enum's members before its __init__/__new__ exists there:
# auto ships source for these (host/losses.py), which creates the class by its statement.
LOSES_SLOTS = {"slots dataclass": 1, "__slots__ class": 1}
AUTO_SHIPS_SOURCE = {*LOSES_SLOTS, "enum members with __init__ / __new__"}
# cloudpickle's global-op walk misses a class body's LOAD_NAME globals, and it imports a module by
# its __name__ (_collections_abc calls itself collections.abc, another module). The capsule has neither.
BY_VALUE_CALL_ERRORS = {"global read in a nested class body": NameError,
                        "stdlib module renamed (_collections_abc)": AttributeError}
CALL_ERRORS = {"failing assert with message": AssertionError, "failing plain assert": AssertionError,
               "user exception raised": AppError}


HOST_MINOR = platform.python_version().rsplit(".", 1)[0]


def expected(shape: str, python: str, serializer: str, implementation: str = sys.implementation.name) -> str:
    """The rule for a cell: everything crosses, except syntax or semantics a Python lacks, and
    what cloudpickle itself gets wrong where ``auto`` uses it (the host's minor, on the host's
    implementation: on PyPy 3.11 ``auto`` ships source)."""
    if shape in CALL_ERRORS:
        return "call_error"
    if shape in BY_VALUE_CALL_ERRORS and serializer == "auto" and python.startswith(HOST_MINOR + ".") \
            and implementation == sys.implementation.name:
        return "call_error"
    if python.startswith("3.9.") and shape == "match statement":
        return "syntax_error"
    if python.startswith("3.9.") and shape.startswith("X | None"):
        return "load_error"
    return "ok"


@pytest.mark.docker
@pytest.mark.parametrize("serializer", ["source", "auto"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape(table_remotes, shape, target, serializer):
    func, args, kwargs = SHAPES[shape]
    remote = table_remotes[target]
    rt = remote.roundtrip(func, *args, serializer=serializer, **kwargs)
    python = remote.target.python
    want = expected(shape, python, serializer, remote.target.implementation)
    assert rt.outcome == want, rt.describe()
    if serializer == "auto" and shape in AUTO_SHIPS_SOURCE and python.startswith(HOST_MINOR + ".") \
            and remote.target.implementation == sys.implementation.name:
        assert rt.serializer == "source" and rt.auto_chose_source, rt.describe()
    if want == "ok":
        assert rt.result == func(*args, **kwargs), "the target answered differently from the host"
        assert type(rt.result) is type(func(*args, **kwargs))
    elif want == "call_error":
        assert isinstance(rt.exception, {**BY_VALUE_CALL_ERRORS, **CALL_ERRORS}[shape]), rt.describe()
        if shape == "failing assert with message":
            assert "x must exceed 10" in str(rt.exception)
    elif want == "syntax_error":
        assert "does not compile on Python 3.9" in rt.error["diagnosis"]
    elif want == "load_error":
        assert "cannot build the union" in rt.error["message"]
        assert "from __future__ import annotations" in rt.error["message"]


@pytest.mark.docker
@pytest.mark.parametrize("serializer", ["cloudpickle-by-value", "dill-recurse"])
@pytest.mark.parametrize("target", ["local", "py3.11"])
def test_rewritten_asserts_ship_as_bytecode_without_pytest(table_remotes, target, serializer):
    """Same minor, bytecode as pytest rewrote it: the target has no pytest, the stand-in helpers
    run, and a failing assert still explains itself."""
    remote = table_remotes[target]
    checker = make_checker(3)  # nested, so dill ships it by value too
    assert "@pytest_ar" in checker.__code__.co_names
    ok = remote.roundtrip(checker, 3, serializer=serializer)
    assert (ok.outcome, ok.result) == ("ok", 6), ok.describe()
    failed = remote.roundtrip(checker, 2, serializer=serializer)
    assert failed.outcome == "call_error" and isinstance(failed.exception, AssertionError), failed.describe()
    assert "assert 2 == 3" in str(failed.exception), str(failed.exception)


def test_rewritten_helper_has_no_pytest_globals():
    from pytest_remote_serial.host.capsule import global_names

    assert "@pytest_ar" in checked_double.__code__.co_names  # pytest did rewrite this module
    assert set(global_names(checked_double)) == {"isinstance", "int"}


class Nowhere:
    __module__ = None  # real code does this (cloudpickle's suite does); it must still round trip

    def hello(self):
        return "it works"


def test_objects_whose_module_is_none_come_back(table_remotes):
    rt = table_remotes["py3.13"].roundtrip(lambda obj: obj.hello(), Nowhere(), serializer="source")
    assert (rt.outcome, rt.result) == ("ok", "it works"), rt.describe()
    same = table_remotes["local"].roundtrip(lambda obj: obj, Nowhere(), serializer="source")
    assert same.outcome == "ok" and type(same.result) is Nowhere, same.describe()


def test_no_source_names_the_member_path(table_remotes):
    namespace: dict = {}
    exec("def helper(x):\n    return x\n", namespace)
    made = namespace["helper"]

    def uses_made(x):
        return made(x)

    rt = table_remotes["py3.13"].roundtrip(uses_made, 1, serializer="source")
    assert rt.outcome == "dump_error"
    assert "func.__closure__[0].cell_contents" in rt.error["message"], rt.error["message"]
    assert "compiled from a string" in rt.error["message"]
    assert "is not a file" not in rt.error["message"]
