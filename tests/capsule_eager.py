"""Shapes from a module *without* lazy annotations: ``X | None`` is evaluated at definition."""

import typing


def union_annotation(x: int | None = None) -> int | None:
    return x


class Options:
    level: int | None = None

    def get(self):
        return self.level


def options_level(level):
    opts = Options()
    opts.level = level
    return opts.get(), typing.get_type_hints(Options)["level"] == typing.Optional[int]
