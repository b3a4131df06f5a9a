"""The report files a run was asked to write (``--remote-report``, ``--remote-html``,
``--remote-markdown``): checked before anything starts, written at the end.

A path that cannot be written (a folder, a read-only place, a file where a folder must be)
would otherwise fail only after the whole run, and lose its report; so each is tried at the
start, by the filesystem itself rather than by permission bits (which say yes to root on a
read-only mount), leaving nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

# pytest option dests, each naming a file written at the end of the run
OUTPUTS = ("remote_report", "remote_html", "remote_markdown")
EXAMPLES = {"remote_report": "report.json", "remote_html": "report.html", "remote_markdown": "matrix.md"}


class OutputError(ValueError):
    """A report path that cannot be written; the message names the option and the fix."""


def flag(option: str) -> str:
    return f"--{option.replace('_', '-')}"


def check_outputs(paths: dict[str, Any]) -> None:
    """Every given path can be written as a file, and no two options name the same one."""
    seen: dict[Path, str] = {}
    for option, raw in paths.items():
        if not raw:
            continue
        path = Path(raw).absolute()
        shown = f"{flag(option)}={raw}"
        example = EXAMPLES[option]
        if str(raw).endswith(("/", os.sep)) or path.is_dir():
            raise OutputError(f"{shown} names a folder; name the file to write in it, e.g. "
                              f"{flag(option)}={os.path.join(str(raw), example)}")
        if path in seen:
            raise OutputError(f"{shown}: {flag(seen[path])} writes that file too; give each report a file of its own")
        seen[path] = option
        problem = _unwritable(path)
        if problem:
            raise OutputError(f"{shown} cannot be written: {problem}; name a file in a folder you can write, "
                              f"e.g. {flag(option)}={example}")


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (its missing folders made on the way), or None."""
    if path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opens it as it is: nothing changes
        except OSError as exc:
            return f"{exc.strerror} ({path})"
        return None
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:  # a file in the nearest folder that exists, made and removed at once
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".prs-check-"):
            pass
    except OSError as exc:
        return f"{exc.strerror} ({folder})"
    return None


def write_output(option: str, report: dict[str, Any], path: str) -> None:
    """The report as ``option`` asks for it; an OSError says why it could not be."""
    if option == "remote_report":
        from .record import write_json

        write_json(report, path)
    elif option == "remote_html":
        from .html import write_html

        write_html(report, path)
    else:
        from .markdown import write_markdown

        write_markdown(report, path)
