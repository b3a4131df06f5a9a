"""The array libraries inside the trust boundary (docs/architecture.md, "The trust boundary").

numpy's pickles call a handful of reconstructors; any other numpy global is a value at most.
A reply may build an array only through those, never a file-backed one (``numpy.memmap``
writes a chosen file), and never with a dtype state numpy would not write itself: a forged
state (object flags on raw bytes) makes numpy read chosen bytes as object pointers.
CuPy arrays come back through the device route (``remote/buffers.py``), not through pickle.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

# A checker gets a call's arguments, refuses bad ones, and says how many bytes the call allocates.
Checker = Callable[[tuple[Any, ...], dict[str, Any]], int]
NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric",
                 "numpy", "numpy.ma.core")
# The type codes numpy writes in a dtype's reduce: a kind letter, an optional size.
_DTYPE_CODE = re.compile(r"[<>|=]?[?a-zA-Z]\d{0,10}")
_ALIGNED_STRUCT = 0x80


class ArrayRefused(ValueError):
    """A numpy call or state that a reply may not make; the message says which and why."""


def _numpy() -> Any:
    return sys.modules.get("numpy")


def is_file_backed(cls: Any) -> bool:
    np = _numpy()
    return np is not None and isinstance(cls, type) and issubclass(cls, np.memmap)


def _array_class(cls: Any) -> Any:
    np = _numpy()
    if not (isinstance(cls, type) and issubclass(cls, np.ndarray)) or is_file_backed(cls):
        raise ArrayRefused(f"an array of class {getattr(cls, '__qualname__', cls)!r} (only in-memory ndarray "
                           "classes)")
    return cls


def _size(shape: Any, itemsize: int) -> int:
    if type(shape) is int:
        shape = (shape,)
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        raise ArrayRefused(f"an array shape {shape!r:.80}")
    total = itemsize
    for n in shape:
        total *= n
    return total


def _code(value: Any) -> Any:
    np = _numpy()
    if isinstance(value, np.dtype):
        return value
    if type(value) in (str, bytes) and _DTYPE_CODE.fullmatch(value if type(value) is str else value.decode("latin1")):
        return np.dtype(value)
    raise ArrayRefused(f"a dtype given as {value!r:.80}")


def _reconstruct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """``_reconstruct(subtype, shape, dtype)``: numpy writes ``(ndarray, (0,), b'b')``."""
    if kwargs or len(args) != 3:
        raise ArrayRefused("_reconstruct with other than (subtype, shape, dtype)")
    _array_class(args[0])
    return _size(args[1], _code(args[2]).itemsize)


def _mareconstruct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kwargs or len(args) != 4:
        raise ArrayRefused("_mareconstruct with other than (subtype, baseclass, baseshape, basetype)")
    _array_class(args[0])
    _array_class(args[1])
    return _size(args[2], _code(args[3]).itemsize)


def _frombuffer(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """A view of a buffer that came with the reply: no copy."""
    if kwargs or len(args) != 4 or not isinstance(args[1], _numpy().dtype):
        raise ArrayRefused("_frombuffer with other than (buffer, dtype, shape, order)")
    _size(args[2], 1)
    return 0


def _scalar(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kwargs or len(args) not in (1, 2) or not isinstance(args[0], _numpy().dtype):
        raise ArrayRefused("scalar with other than (dtype, data)")
    return args[0].itemsize


def _dtype(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kwargs or not 1 <= len(args) <= 3 or not all(type(a) is bool for a in args[1:]):
        raise ArrayRefused("dtype with other than (code, align, copy)")
    _code(args[0])
    return 0


def checkers() -> dict[Any, Checker]:
    """The numpy callables a reply may call, each with its checker; empty without numpy here."""
    np = _numpy()
    if np is None:
        return {}
    found: dict[Any, Checker] = {np.dtype: _dtype}
    for module, name, check in (("multiarray", "_reconstruct", _reconstruct), ("multiarray", "scalar", _scalar),
                                ("numeric", "_frombuffer", _frombuffer)):
        for prefix in ("numpy._core.", "numpy.core."):
            mod = sys.modules.get(prefix + module)
            if mod is not None and hasattr(mod, name):
                found[getattr(mod, name)] = check
    ma = sys.modules.get("numpy.ma.core")
    if ma is not None:
        found[ma._mareconstruct] = _mareconstruct
    return found


def nameable(module: str, obj: Any) -> bool:
    """What of numpy a reply may name as a value: its classes (never a file-backed one)."""
    return module.partition(".")[0] == "numpy" and isinstance(obj, type) and not is_file_backed(obj)


def builds(inst: Any) -> bool:
    """Whether BUILD on this object is numpy's to check: a dtype's state, an array's."""
    np = _numpy()
    return np is not None and isinstance(inst, (np.dtype, np.ndarray))


def check_state(inst: Any, state: Any) -> None:
    """An array's state is checked by numpy itself (sizes against data); a dtype's must be the
    very state numpy writes for the dtype it describes."""
    np = _numpy()
    if isinstance(inst, np.ndarray):
        if is_file_backed(type(inst)):
            raise ArrayRefused("the state of a file-backed array")
        return
    try:
        candidate = _dtype_from_state(np, inst, state)
        same = _same(candidate.__reduce__()[2], state)
    except ArrayRefused:
        raise
    except Exception as exc:
        raise ArrayRefused(f"a dtype state numpy cannot describe ({exc})") from None
    if not same:
        raise ArrayRefused(f"a dtype state {state!r:.120} that numpy would not write for {candidate}")


def _dtype_from_state(np: Any, inst: Any, state: Any) -> Any:
    """The dtype the state describes, built through numpy's public constructors."""
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise ArrayRefused(f"a dtype state {state!r:.80}")
    endian, sub, names, fields, elsize, _align, flags = state[1:8]
    if sub is not None:
        if type(sub) is not tuple or len(sub) != 2 or not isinstance(sub[0], np.dtype):
            raise ArrayRefused(f"a dtype subarray {sub!r:.80}")
        return np.dtype((sub[0], sub[1]))
    if names is not None:
        if type(names) is not tuple or type(fields) is not dict or not all(type(n) is str for n in names):
            raise ArrayRefused(f"dtype fields {fields!r:.80}")
        parts = [fields[n] for n in names]
        if not all(type(p) is tuple and len(p) in (2, 3) and isinstance(p[0], np.dtype) for p in parts):
            raise ArrayRefused(f"dtype fields {fields!r:.80}")
        return np.dtype({"names": list(names), "formats": [p[0] for p in parts], "offsets": [p[1] for p in parts],
                         "titles": [p[2] if len(p) == 3 else None for p in parts], "itemsize": elsize},
                        align=bool(type(flags) is int and flags & _ALIGNED_STRUCT))
    order = endian if endian in ("<", ">") else "|"
    if inst.kind in "Mm":
        unit, num = state[8][1][:2]
        return np.dtype(f"{order}{inst.kind}8[{num if num != 1 else ''}{unit.decode('ascii')}]")
    if inst.kind in "USV":
        return np.dtype(f"{order}{inst.kind}{elsize // 4 if inst.kind == 'U' else elsize}")
    base = np.dtype(inst.char)
    return base.newbyteorder(order) if order != "|" and base.byteorder != "|" else base


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)
