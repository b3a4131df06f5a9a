"""Held-out shapes for the differential yardstick (tests/test_yardstick.py), as real code has them.

An ordinary module, not a test module (pytest does not rewrite it), importable on every target
from Python 3.9 on with nothing but the standard library: the yardstick imports it natively on
each target (``paths``) and compares that with the capsule. Each shape returns plain data, so a
difference is a difference in behaviour, never in how a result prints.

The last section holds module state computed at import, where shipping by value differs from
importing on the worker (README, "What by value means").
"""

import abc
import asyncio
import collections
import contextlib
import contextvars
import copyreg
import dataclasses
import enum
import functools
import inspect
import io
import itertools
import operator
import os
import pickle
import re
import struct
import sys
import threading
import typing
import weakref

# ----------------------------------------------------------------------------- descriptors, classes


class Positive:
    """A validating descriptor that learns its attribute name from ``__set_name__``."""

    def __set_name__(self, owner, name):
        self.name = "_" + name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.name)

    def __set__(self, obj, value):
        if value <= 0:
            raise ValueError("%s must be positive" % self.name[1:])
        setattr(obj, self.name, value)


class Order:
    qty = Positive()
    price = Positive()

    def __init__(self, qty, price):
        self.qty, self.price = qty, price


def descriptor_set_name():
    order = Order(2, 5)
    try:
        order.qty = -1
    except ValueError as exc:
        return order.qty * order.price, str(exc), Order.qty.name


class Registry:
    def __class_getitem__(cls, item):
        return "Registry of %s" % getattr(item, "__name__", item)


def class_getitem():
    return Registry[int], Registry["x"]


class Celsius:
    def __init__(self):
        self._c = 0.0

    @property
    def c(self):
        return self._c

    @c.setter
    def c(self, value):
        self._c = round(float(value), 2)

    @c.deleter
    def c(self):
        self._c = None


def property_setter():
    t = Celsius()
    t.c = "21.456"
    first = t.c
    del t.c
    return first, t.c


def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return ("logged", func(*args, **kwargs))

    return wrapper


def timed(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return ("timed", func(*args, **kwargs))

    return wrapper


@logged
@timed
def wrapped_twice(x):
    """Doubles."""
    return x * 2


def wraps_chain():
    return (wrapped_twice(4), wrapped_twice.__name__, wrapped_twice.__doc__,
            wrapped_twice.__wrapped__.__name__, wrapped_twice.__wrapped__.__wrapped__(5))


class Account:
    def __init__(self, balance):
        self.balance = balance

    def deposit(self, amount, note=""):
        self.balance += amount
        return self.balance, note


ACCOUNT = Account(10)
DEPOSIT_FIVE = functools.partial(ACCOUNT.deposit, 5, note="five")


def partial_bound_method():
    return DEPOSIT_FIVE(), DEPOSIT_FIVE()


BY_NAME = operator.itemgetter("name")
BY_AGE = operator.attrgetter("age")
UPPER = operator.methodcaller("upper")
Person = collections.namedtuple("Person", "name age")


def operator_getters():
    people = [Person("bo", 30), Person("al", 25)]
    return ([BY_NAME(p._asdict()) for p in people], sorted(people, key=BY_AGE)[0].name, UPPER("abc"))


WORD = re.compile(r"(?P<word>[a-z]+)(?P<digits>\d*)", re.IGNORECASE)


def compiled_regex():
    return [m.groupdict() for m in WORD.finditer("Ab12 cd EF3")], WORD.flags & re.IGNORECASE != 0


HEADER = struct.Struct("<HI")


def struct_global():
    packed = HEADER.pack(7, 1000)
    return packed, HEADER.unpack(packed), HEADER.size


class Plain:
    """Instances whose state round-trips as its __dict__."""

    def __init__(self, a):
        self.a = a
        self.b = [a]


def pickle_own_class_inside():
    return pickle.loads(pickle.dumps(Plain(3))).b


class WithState:
    def __init__(self, value):
        self.value = value
        self.handle = io.StringIO("open")

    def __getstate__(self):
        return {"value": self.value}

    def __setstate__(self, state):
        self.value = state["value"]
        self.handle = None


def getstate_class(obj):
    return obj.value, obj.handle is None


# ----------------------------------------------------------------------------- generators, async, context


def fib_gen():
    a, b = 0, 1
    while True:
        yield a
        a, b = b, a + b


def chained():
    yield from itertools.islice(fib_gen(), 6)
    yield "end"


def generator_yield_from():
    gen = chained()
    first = next(gen)
    return first, list(gen)


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i * i


async def collect(n):
    return [x async for x in ticks(n)]


def async_generator():
    return asyncio.run(collect(4))


@contextlib.contextmanager
def tag(log, name):
    log.append("<" + name + ">")
    try:
        yield name
    finally:
        log.append("</" + name + ">")


def exit_stack():
    log = []
    with contextlib.ExitStack() as stack:
        for name in ("a", "b"):
            stack.enter_context(tag(log, name))
        stack.callback(log.append, "callback")
        log.append("body")
    with contextlib.suppress(KeyError):
        {}["missing"]
    return log


class CountingNamespace(dict):
    def __init__(self):
        super().__init__()
        self.order = []

    def __setitem__(self, key, value):
        if not key.startswith("__"):
            self.order.append(key)
        super().__setitem__(key, value)


class OrderedMeta(type):
    @classmethod
    def __prepare__(mcs, name, bases, **kwargs):
        return CountingNamespace()

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, dict(namespace))
        cls.field_order = tuple(namespace.order)
        return cls


class Form(metaclass=OrderedMeta):
    zeta = 1
    alpha = 2

    def middle(self):
        return "m"

    beta = 3


def metaclass_prepare():
    return Form.field_order, Form().middle()


class Component:
    kinds = {}

    def __init_subclass__(cls, kind="plain", priority=0, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.kind, cls.priority = kind, priority
        Component.kinds[kind] = cls.__name__


class Button(Component, kind="button", priority=2):
    pass


class Label(Component):
    pass


def init_subclass_keywords():
    return sorted(Component.kinds.items()), Button.priority, Label.kind


def auto_repr(cls):
    fields = [k for k in vars(cls) if not k.startswith("_") and not callable(vars(cls)[k])]

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (f, getattr(self, f)) for f in fields))

    cls.__repr__ = __repr__
    return cls


@auto_repr
class Config:
    host = "localhost"
    port = 8080


def class_decorator_repr():
    c = Config()
    c.port = 9
    return repr(c)


def factorial(n):
    return 1 if n <= 1 else n * factorial(n - 1)


def recursive():
    return factorial(12)


def count_nodes(tree):
    return 1 + sum(count_forest(tree[1:]) for _ in [0])


def count_forest(forest):
    return sum(count_nodes(t) for t in forest)


def mutually_recursive():
    return count_nodes(("root", ("a", ("b",)), ("c",)))


class ParseError(Exception):
    def __init__(self, line, reason):
        super().__init__("line %d: %s" % (line, reason))
        self.line = line


def exception_notes_cause():
    try:
        try:
            int("x")
        except ValueError as low:
            err = ParseError(3, "not a number")
            if hasattr(err, "add_note"):
                err.add_note("while reading config")
            else:
                err.__notes__ = ["while reading config"]
            raise err from low
    except ParseError as exc:
        return (str(exc), exc.line, list(exc.__notes__), type(exc.__cause__).__name__,
                exc.__suppress_context__)


def raises_with_cause():
    try:
        {}["k"]
    except KeyError as low:
        raise ParseError(9, "missing key") from low


# ----------------------------------------------------------------------------- data classes, enums, typing


@dataclasses.dataclass(order=True)
class Version:
    major: int
    minor: int = 0
    tags: list = dataclasses.field(default_factory=list, compare=False)

    def __post_init__(self):
        self.tags = sorted(self.tags)


def dataclass_post_init():
    versions = sorted([Version(3, 11, ["b", "a"]), Version(3, 9), Version(3, 11)])
    return [dataclasses.astuple(v) for v in versions], dataclasses.replace(versions[0], minor=10).minor


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int

    def moved(self, dx):
        return dataclasses.replace(self, x=self.x + dx)


@dataclasses.dataclass
class Segment:
    start: Point
    end: Point


def nested_dataclass_asdict():
    return dataclasses.asdict(Segment(Point(0, 0), Point(1, 2).moved(3))), hash(Point(1, 2)) == hash(Point(1, 2))


class Color(enum.Enum):
    RED = enum.auto()
    GREEN = enum.auto()

    def describe(self):
        return "%s=%s" % (self.name, self.value)

    @classmethod
    def parse(cls, text):
        return cls[text.upper()]


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


def enum_auto_flags():
    rw = Perm.R | Perm.W
    return Color.parse("green").describe(), int(rw), Perm.W in rw, Perm.X in rw, [c.name for c in Color]


class Shade(enum.Enum):
    RED = 1
    CRIMSON = 1  # an alias
    BLUE = 2

    @classmethod
    def _missing_(cls, value):
        return cls.BLUE if value == "sky" else None


def enum_alias_missing():
    return Shade.CRIMSON is Shade.RED, [s.name for s in Shade], Shade("sky").name, len(Shade.__members__)


class Planet(enum.Enum):
    MERCURY = (3.303e23, 2.4397e6)
    EARTH = (5.976e24, 6.37814e6)

    def __init__(self, mass, radius):
        self.mass, self.radius = mass, radius

    @property
    def gravity(self):
        return round(6.673e-11 * self.mass / (self.radius * self.radius), 2)


def enum_tuple_init():
    return Planet.EARTH.mass, Planet.EARTH.gravity, Planet((3.303e23, 2.4397e6)).name


class Coord(typing.NamedTuple):
    lat: float
    lon: float = 0.0

    def flipped(self):
        return Coord(self.lon, self.lat)


def namedtuple_methods():
    c = Coord(1.5)
    return c.flipped(), c._replace(lon=2.0), Coord._fields, Coord._field_defaults


Row = collections.namedtuple("Row", ["id", "class", "id", "_x"], rename=True)  # columns of a CSV header


def namedtuple_renamed():
    row = Row(1, "a", 2, 3)
    return Row._fields, row._replace(_1="b"), row._asdict()


T = typing.TypeVar("T", bound=typing.Hashable)


class Cache(typing.Generic[T]):
    def __init__(self):
        self.items: dict[T, int] = {}

    def add(self, key: T) -> int:
        self.items[key] = self.items.get(key, 0) + 1
        return self.items[key]


def generic_bound():
    c = Cache[str]()
    c.add("a")
    return c.add("a"), T.__bound__ is typing.Hashable, typing.get_args(Cache[int])


UserId = typing.NewType("UserId", int)


def newtype_cast():
    uid = UserId(5)
    return uid + 1, UserId.__name__, typing.cast(str, "s")


# ----------------------------------------------------------------------------- protocols of the data model


class Fraction:
    def __init__(self, n, d):
        self.n, self.d = n, d

    def __eq__(self, other):
        return self.n * other.d == other.n * self.d

    def __hash__(self):
        return hash(self.n / self.d)

    def __format__(self, spec):
        return format(self.n / self.d, spec)


def eq_hash_format():
    return len({Fraction(1, 2), Fraction(2, 4), Fraction(1, 3)}), f"{Fraction(1, 3):.3f}"


@functools.total_ordering
class Money:
    def __init__(self, cents):
        self.cents = cents

    def __eq__(self, other):
        return self.cents == other.cents

    def __lt__(self, other):
        return self.cents < other.cents


def total_ordering():
    return Money(1) <= Money(2), Money(3) >= Money(3), max([Money(5), Money(9)]).cents


class Countdown:
    def __init__(self, start):
        self.current = start

    def __iter__(self):
        return self

    def __next__(self):
        if self.current <= 0:
            raise StopIteration
        self.current -= 1
        return self.current + 1


def iterator_protocol():
    return list(Countdown(4)), sum(Countdown(3))


class Transaction:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append("begin")
        return self

    def __exit__(self, kind, exc, tb):
        self.log.append("rollback" if kind else "commit")
        return kind is KeyError


def context_manager_class():
    log = []
    with Transaction(log):
        log.append("work")
    with Transaction(log):
        raise KeyError("swallowed")
    return log


class Multiplier:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x * self.k


TRIPLE = Multiplier(3)


def callable_instance():
    return list(map(TRIPLE, [1, 2])), callable(TRIPLE)


class Lazy:
    def __getattr__(self, name):
        if name.startswith("get_"):
            return lambda: name[4:]
        raise AttributeError(name)


def dynamic_getattr():
    return Lazy().get_user(), hasattr(Lazy(), "other")


class Defaults(dict):
    def __missing__(self, key):
        return key * 2


def dict_missing():
    d = Defaults(a=1)
    return d["a"], d["bb"], "bb" in d


class Shape(abc.ABC):
    @property
    @abc.abstractmethod
    def area(self):
        ...

    def describe(self):
        return "%s of area %s" % (type(self).__name__, self.area)


class Rect(Shape):
    def __init__(self, w, h):
        self.w, self.h = w, h

    @property
    def area(self):
        return self.w * self.h


def abstract_property():
    try:
        Shape()
    except TypeError:
        refused = True
    return Rect(2, 3).describe(), refused


class Base:
    @classmethod
    def create(cls, *args):
        return cls(*args)

    def __init__(self, v):
        self.v = v


class Child(Base):
    @classmethod
    def create(cls, *args):
        obj = super().create(*args)
        obj.v *= 10
        return obj


def classmethod_super():
    return type(Child.create(2)).__name__, Child.create(2).v


class Formatter:
    @functools.singledispatchmethod
    def fmt(self, arg):
        return "obj:%r" % (arg,)

    @fmt.register
    def _(self, arg: int):
        return "int:%d" % arg

    @fmt.register
    def _(self, arg: list):
        return "list:" + ",".join(self.fmt(a) for a in arg)


def singledispatchmethod():
    f = Formatter()
    return f.fmt(3), f.fmt([1, "x"]), f.fmt(None)


# ----------------------------------------------------------------------------- functions, closures, stdlib


def make_adders():
    return [lambda x, i=i: x + i for i in range(3)]


def loop_closures():
    return [f(10) for f in make_adders()]


def reduce_lambda():
    return functools.reduce(lambda acc, x: acc * 10 + x, [1, 2, 3], 0)


def groupby_local():
    data = sorted(["apple", "avocado", "banana", "blueberry", "cherry"], key=operator.itemgetter(0))
    return {k: len(list(g)) for k, g in itertools.groupby(data, key=operator.itemgetter(0))}


INVENTORY = collections.Counter(apples=3, pears=1)
GROUPS = collections.defaultdict(list, {"a": [1]})
RECENT = collections.deque([1, 2, 3], maxlen=3)
ORDERED = collections.OrderedDict([("z", 1), ("a", 2)])


def collections_globals():
    RECENT.append(4)
    return (INVENTORY.most_common(1), GROUPS["b"], list(RECENT), RECENT.maxlen, list(ORDERED),
            type(GROUPS).__name__)


def keyword_only_defaults(a, *args, sep="-", **kwargs):
    return sep.join([str(a), *map(str, args), *("%s=%s" % kv for kv in sorted(kwargs.items()))])


def introspected_source():
    return inspect.getsource(introspected_source).splitlines()[0]


class Node:
    __slots__ = ("value", "__weakref__")

    def __init__(self, value):
        self.value = value


def slots_weakref():
    node = Node(1)
    ref = weakref.ref(node)
    try:
        node.other = 2
        extra = "accepted"
    except AttributeError:
        extra = "refused"
    return ref() is node, extra, hasattr(node, "__dict__")


def weekday_enum():
    import calendar

    return calendar.Day.MONDAY  # new in 3.12: a class the host's 3.11 does not have


LETTERS = itertools.cycle("abc")


def itertools_global():
    return next(LETTERS), next(LETTERS), next(LETTERS), next(LETTERS)


# ----------------------------------------------------------------------------- held out, by value's mechanism


class Outer:
    class Inner:
        def __repr__(self):
            return "<%s>" % type(self).__qualname__


def nested_qualname():
    return repr(Outer.Inner()), Outer.Inner.__qualname__


def shared_counter():
    count = 0

    def inc():
        nonlocal count
        count += 1

    def peek():
        return count

    return inc, peek


INC, PEEK = shared_counter()


def shared_cell():
    INC()
    INC()
    return PEEK()


class Ordered:
    zulu = 1
    alpha = 2
    mike = 3


def class_dict_order():
    return [k for k in vars(Ordered) if not k.startswith("__")]


@typing.runtime_checkable
class Closeable(typing.Protocol):
    def close(self):
        ...


class Resource:
    def close(self):
        return "closed"


def runtime_protocol():
    return isinstance(Resource(), Closeable), isinstance(1, Closeable)


class Movie(typing.TypedDict):
    title: str
    year: int


def typed_dict():
    m = Movie(title="Up", year=2009)
    return m, sorted(Movie.__annotations__)


class Sequel(Movie, total=False):
    prequel: str


def typed_dict_subclass():
    s = Sequel(title="Up 2", year=2030)
    return s, sorted(Sequel.__required_keys__), sorted(Sequel.__optional_keys__), Sequel.__total__


class Sized(typing.Protocol):
    def size(self) -> int:
        ...


class Box(Sized):  # a class that names its Protocol as a base
    def size(self):
        return 3


def protocol_base():
    return Box().size(), Sized in Box.__mro__


LOOKED_UP = "by name"


def dynamic_globals():
    return globals()["LOOKED_UP"], eval("LOOKED_UP"), sys.modules[__name__].LOOKED_UP


class Annotated:
    ref: "Point"


def string_annotation_hints():
    return typing.get_type_hints(Annotated)["ref"].__name__


LOCK = threading.Lock()


def lock_global():
    with LOCK:
        return LOCK.locked()


REQUEST_ID = contextvars.ContextVar("request_id", default="none")


def contextvar_global():
    token = REQUEST_ID.set("r1")
    inside = REQUEST_ID.get()
    REQUEST_ID.reset(token)
    return inside, REQUEST_ID.get(), REQUEST_ID.name


_INSTANCES = weakref.WeakValueDictionary()


def weak_cache():
    p = Plain(1)
    _INSTANCES["p"] = p
    return len(_INSTANCES), _INSTANCES["p"] is p


# ------------------------------------------------------------ by value: module state computed at import

NEW_PYTHON = sys.version_info >= (3, 12)


def version_flag():
    return NEW_PYTHON


MODE = os.environ.get("PRS_YARDSTICK_MODE", "unset")


def environ_at_import():
    return MODE


sys.setrecursionlimit(4321)


def recursion_limit():
    return sys.getrecursionlimit()


@functools.cache
def square(n):
    return n * n


square(3)  # warmed at import


def warm_cache():
    square(3)
    return square.cache_info().hits


class Session:
    """Drops its connection cache when pickled (``__getstate__``)."""

    def __init__(self):
        self.user = "ann"
        self.cache = {"conn": 1}

    def __getstate__(self):
        return {"user": self.user, "cache": {}}


SESSION = Session()


def getstate_global():
    return SESSION.user, SESSION.cache


class Meter:
    def __init__(self, unit, reading):
        self.unit, self.reading = unit, reading


def _reduce_meter(meter):
    return Meter, (meter.unit, 0)  # a reducer that resets the reading


copyreg.pickle(Meter, _reduce_meter)
METER = Meter("kWh", 42)


def copyreg_global():
    return METER.unit, METER.reading


NAN = float("nan")
VALUES = [NAN, 1.0]


def nan_identity():
    return NAN in VALUES, VALUES.index(NAN) if NAN in VALUES else -1


TAGS = set(range(0, 64, 3))
for _gone in range(0, 64, 6):
    TAGS.discard(_gone)
TAGS.update({70, 200, 1024})


def set_order():
    return list(TAGS)


# name -> (function, args, kwargs)
SHAPES = {
    "descriptor with __set_name__": (descriptor_set_name, (), {}),
    "__class_getitem__": (class_getitem, (), {}),
    "property setter and deleter": (property_setter, (), {}),
    "functools.wraps chain": (wraps_chain, (), {}),
    "partial of a bound method": (partial_bound_method, (), {}),
    "operator getters": (operator_getters, (), {}),
    "compiled regex global": (compiled_regex, (), {}),
    "struct.Struct global": (struct_global, (), {}),
    "__getstate__ class argument": (getstate_class, (WithState(5),), {}),
    "generator with yield from": (generator_yield_from, (), {}),
    "async generator": (async_generator, (), {}),
    "contextlib ExitStack and suppress": (exit_stack, (), {}),
    "metaclass __prepare__": (metaclass_prepare, (), {}),
    "__init_subclass__ with keywords": (init_subclass_keywords, (), {}),
    "class decorator adds __repr__": (class_decorator_repr, (), {}),
    "recursive function": (recursive, (), {}),
    "mutually recursive functions": (mutually_recursive, (), {}),
    "exception with __notes__ and __cause__": (exception_notes_cause, (), {}),
    "exception raised with a cause": (raises_with_cause, (), {}),
    "dataclass order, field, __post_init__": (dataclass_post_init, (), {}),
    "nested frozen dataclasses, asdict": (nested_dataclass_asdict, (), {}),
    "Enum auto() and IntFlag": (enum_auto_flags, (), {}),
    "enum alias and _missing_": (enum_alias_missing, (), {}),
    "enum tuple values unpacked by __init__": (enum_tuple_init, (), {}),
    "NamedTuple with methods and defaults": (namedtuple_methods, (), {}),
    "namedtuple(rename=True)": (namedtuple_renamed, (), {}),
    "Generic with a bound TypeVar": (generic_bound, (), {}),
    "NewType and cast": (newtype_cast, (), {}),
    "__eq__, __hash__, __format__": (eq_hash_format, (), {}),
    "functools.total_ordering": (total_ordering, (), {}),
    "iterator protocol class": (iterator_protocol, (), {}),
    "context manager class": (context_manager_class, (), {}),
    "callable instance global": (callable_instance, (), {}),
    "__getattr__ fallback": (dynamic_getattr, (), {}),
    "dict subclass with __missing__": (dict_missing, (), {}),
    "abstract property": (abstract_property, (), {}),
    "classmethod with super()": (classmethod_super, (), {}),
    "singledispatchmethod": (singledispatchmethod, (), {}),
    "lambdas binding a loop variable": (loop_closures, (), {}),
    "functools.reduce with a lambda": (reduce_lambda, (), {}),
    "itertools.groupby with itemgetter": (groupby_local, (), {}),
    "collections globals": (collections_globals, (), {}),
    "*args, keyword-only, **kwargs": (keyword_only_defaults, (1, 2), {"sep": "/", "z": 0}),
    "inspect.getsource of itself": (introspected_source, (), {}),
    "__slots__ with __weakref__": (slots_weakref, (), {}),
    "stdlib class new on the target (calendar.Day)": (weekday_enum, (), {}),
    "itertools iterator global": (itertools_global, (), {}),
    "nested class __qualname__": (nested_qualname, (), {}),
    "closure cell shared by two functions": (shared_cell, (), {}),
    "class attribute order": (class_dict_order, (), {}),
    "runtime_checkable Protocol": (runtime_protocol, (), {}),
    "TypedDict": (typed_dict, (), {}),
    "TypedDict subclass, total=False": (typed_dict_subclass, (), {}),
    "Protocol named as a base": (protocol_base, (), {}),
    "pickles its module's class inside the call": (pickle_own_class_inside, (), {}),
    "globals()[name], eval, sys.modules[__name__]": (dynamic_globals, (), {}),
    "string annotation through get_type_hints": (string_annotation_hints, (), {}),
    "threading.Lock global": (lock_global, (), {}),
    "ContextVar global": (contextvar_global, (), {}),
    "WeakValueDictionary cache global": (weak_cache, (), {}),
    # module state computed at import: by value carries the host's (README, "What by value means")
    "flag from sys.version_info": (version_flag, (), {}),
    "value from os.environ": (environ_at_import, (), {}),
    "import-time sys.setrecursionlimit": (recursion_limit, (), {}),
    "warm lru_cache": (warm_cache, (), {}),
    "__getstate__ of a global": (getstate_global, (), {}),
    "copyreg reducer of a global": (copyreg_global, (), {}),
    "nan identity (nan in [nan])": (nan_identity, (), {}),
    "set order after deletions": (set_order, (), {}),
}
