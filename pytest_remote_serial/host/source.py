"""Where a code object's source is: found by its position, never by its name alone.

A code object knows its file (``co_filename``), its first line and, from 3.11, the columns of
its instructions. That finds the one ``def`` or ``lambda`` that made it even when a file holds
two local classes of the same name, an ``if``/``else`` pair of definitions or two lambdas on one
line. What is shipped is that statement's exact text (so string constants stay byte-identical)
with its line number, which the target compiles without executing (see ``remote/rebuild.py``'s ``compile_capsule``).
"""

from __future__ import annotations
import __future__

import ast
import linecache
import os
import sys
import types
from functools import lru_cache
from typing import Any

from ..remote.rebuild import compile_capsule

NO_SOURCE_HINT = (
    "define it in a file (or a notebook cell), keep the REPL's source in linecache, or use "
    "serializer='cloudpickle' for targets with the host's Python version"
)
_FUTURES = [(name, getattr(__future__, name).compiler_flag) for name in __future__.all_feature_names]


class SourceUnavailable(ValueError):
    """No source exists for code the capsule must ship; the message says why and how to fix it."""


def futures(code: types.CodeType) -> list[str]:
    """The ``from __future__`` features the code was compiled with, by name (flags differ by version)."""
    return [name for name, flag in _FUTURES if flag and code.co_flags & flag]


def code_capsule(code: types.CodeType, module_globals: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the target needs to compile ``code`` again: the statement's text and position."""
    return dict(_capsule(code, _lines_key(code.co_filename, module_globals)))


def clean_code(code: types.CodeType, module_globals: dict[str, Any] | None = None) -> types.CodeType:
    """``code`` compiled again from its source, as the target will: without pytest's assertion
    rewriting, so globals are read from what the user wrote, not from ``@pytest_ar`` helpers."""
    return _clean(code, _lines_key(code.co_filename, module_globals))


def _lines_key(filename: str, module_globals: dict[str, Any] | None) -> tuple[tuple[str, ...], ...]:
    """Where the source may be, best first, as a cache key: the file or cell (linecache asks
    the module's loader for what it cannot read: zip imports, notebooks), else each statement
    of readline's history, newest first (it changes as the user types, so it is in the key)."""
    lines = tuple(linecache.getlines(filename, module_globals))
    return (lines,) if lines else tuple(_history_statements())


@lru_cache(maxsize=4096)
def _capsule(code: types.CodeType, lines: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, Any], ...]:
    text, line = _segment(code, lines)
    return (("text", text), ("line", line), ("filename", code.co_filename), ("name", code.co_name),
            ("firstlineno", code.co_firstlineno), ("freevars", list(code.co_freevars)),
            ("futures", futures(code)))


@lru_cache(maxsize=4096)
def _clean(code: types.CodeType, lines: tuple[tuple[str, ...], ...]) -> types.CodeType:
    return compile_capsule(dict(_capsule(code, lines)), remember_lines=False)


def _segment(code: types.CodeType, sources: tuple[tuple[str, ...], ...]) -> tuple[str, int]:
    for lines in sources:
        node = _find_node(code, list(lines))
        if node is not None:
            return _cut(list(lines), node), _first_line(node)
    raise SourceUnavailable(_why_no_source(code, bool(linecache.getlines(code.co_filename))))


def _why_no_source(code: types.CodeType, had_lines: bool) -> str:
    what = "a lambda" if code.co_name == "<lambda>" else code.co_qualname if hasattr(code, "co_qualname") \
        else code.co_name
    filename = code.co_filename
    where = f"{what} ({filename!r}, line {code.co_firstlineno})"
    if had_lines:
        return (f"the source of {where} is not at that line of the file any more (was the file "
                "changed since it was imported?); re-import it, or restart the session")
    if filename == "<stdin>":
        return (f"no source exists for {where}: it was typed at the REPL and readline history no "
                f"longer holds it; {NO_SOURCE_HINT}")
    if filename.startswith("<"):
        return (f"no source exists for {where}: it was compiled from a string (exec, eval or "
                f"compile) and linecache holds no text for {filename!r}; {NO_SOURCE_HINT}")
    if not os.path.exists(filename):
        return f"no source exists for {where}: the file {filename!r} no longer exists; {NO_SOURCE_HINT}"
    return f"no source exists for {where}: the file {filename!r} cannot be read; {NO_SOURCE_HINT}"


_CONTINUATION = ("else", "elif", "except", "finally", ")", "]", "}")


def _history_statements() -> list[tuple[str, ...]]:
    """Each statement typed at a readline REPL, newest first (the classic ``<stdin>`` REPL)."""
    readline = sys.modules.get("readline")  # imported by the REPL itself; never import it here
    if readline is None:
        return []
    lines = [readline.get_history_item(i) or "" for i in range(1, readline.get_current_history_length() + 1)]
    starts = [i for i, line in enumerate(lines)
              if line[:1] not in ("", " ", "\t") and not line.startswith(_CONTINUATION)
              and not (i and lines[i - 1].startswith("@"))]
    found = []
    for k in reversed(range(len(starts))):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        found.append(tuple(line + "\n" for line in lines[starts[k]:end]))
    return found


@lru_cache(maxsize=64)
def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except SyntaxError:  # a cell with magics, or a file changed into something else
        return None


def _first_line(node: Any) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _find_node(code: types.CodeType, lines: list[str]) -> Any:
    tree = _parse("".join(lines))
    if tree is None:
        return None
    first = code.co_firstlineno
    found: list[Any]
    if code.co_name == "<lambda>":
        found = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == first]
    else:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
        found = [n for n in ast.walk(tree) if isinstance(n, kinds) and n.name == code.co_name
                 and _first_line(n) == first]
    if len(found) > 1:
        found = _by_columns(code, found)
    return found[0] if found else None


def _by_columns(code: types.CodeType, found: list[Any]) -> list[Any]:
    """Several candidates on one line: the innermost whose body holds the code's instructions."""
    cols = {pos[2] for pos in getattr(code, "co_positions", lambda: [])()
            if pos[0] == code.co_firstlineno and pos[2] is not None}
    if not cols:
        names = list(code.co_varnames[: code.co_argcount])
        same = [n for n in found if [a.arg for a in n.args.args] == names]
        if len(same) == 1:
            return same
        raise SourceUnavailable(
            f"{len(found)} definitions of {code.co_name} start on line {code.co_firstlineno} of "
            f"{code.co_filename!r} and Python {sys.version_info[0]}.{sys.version_info[1]} records no "
            "columns to tell them apart; put them on separate lines")

    def body_span(n: Any) -> tuple[int, int]:
        body = n.body if isinstance(n, ast.Lambda) else n.body[0]
        end = body.end_col_offset if body.end_lineno == body.lineno and body.end_col_offset else 10**9
        return body.col_offset, end

    holding = [n for n in found if any(body_span(n)[0] <= c < body_span(n)[1] for c in cols)]
    return sorted(holding, key=lambda n: body_span(n)[0], reverse=True)[:1] or found[:1]


def _cut(lines: list[str], node: Any) -> str:
    """The node's exact text; the first line's prefix becomes spaces so columns stay put."""
    first, last = _first_line(node), node.end_lineno
    start_col = min([node.col_offset, *(d.col_offset - 1 for d in getattr(node, "decorator_list", ()))])
    chunk = [line if line.endswith("\n") else line + "\n" for line in lines[first - 1:last]]
    tail = chunk[-1].encode()[: node.end_col_offset].decode(errors="replace")
    chunk[-1] = tail + "\n"
    head = chunk[0].encode()
    prefix, rest = head[:start_col].decode(errors="replace"), head[start_col:].decode(errors="replace")
    if isinstance(node, ast.Lambda):  # an expression: parenthesised so it may span lines
        pad = " " * max(len(prefix) - 1, 0)
        chunk[0] = pad + "(" + rest
        chunk[-1] = chunk[-1].rstrip("\n") + ")\n"
    else:
        chunk[0] = " " * len(prefix) + rest
    return "".join(chunk)
