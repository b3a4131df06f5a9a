"""A script module (not installed anywhere) with a toolz-curried function, for assert_portable."""

from toolz import curry


@curry
def scale(factor, x):
    return factor * x
