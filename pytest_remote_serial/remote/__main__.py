"""The agent's command line, as the backends start it: ``python agent.zip --socket PATH`` (or
``--stdio``), with ``--lib`` for each injected serializer zip, ``--path`` for each folder of
the target's ``paths``, and ``--serializers image`` where the target's own serializers come first.
"""

from __future__ import annotations

import os
import signal
import sys

from . import describe, preload
from .serve import serve, serve_socket
from .wire import Channel


class Options:
    socket = ""
    stdio = False
    keep = False
    accept_timeout = 300.0
    serializers = "injected"  # "image": the --lib zips go after the target's own packages

    def __init__(self) -> None:
        self.lib: list = []
        self.path: list = []


def parse_options(argv: list) -> Options:
    """getopt, not argparse: argparse and what it imports (shutil, locale, gettext) cost ~15 ms
    of a container's cold start."""
    import getopt

    pairs, rest = getopt.getopt(argv, "", ["socket=", "stdio", "lib=", "path=", "keep", "accept-timeout=",
                                           "serializers="])
    if rest:
        raise SystemExit("agent: unexpected arguments %r" % (rest,))
    opts = Options()
    for flag, value in pairs:
        if flag == "--socket":
            opts.socket = value
        elif flag == "--accept-timeout":
            opts.accept_timeout = float(value)
        elif flag == "--serializers":
            opts.serializers = value
        elif flag in ("--lib", "--path"):
            getattr(opts, flag[2:]).append(value)
        else:
            setattr(opts, flag[2:], True)
    return opts


def export_paths(paths: list) -> None:
    """The target's ``paths`` reach the processes a call starts as they reach a worker's: on
    ``PYTHONPATH``, before what the target's own environment had there, so a framework's runner
    started as a subprocess imports the user's code. The agent's zip and the injected serializer
    zips stay off it: a worker's subprocess imports what the worker has installed, so a runner
    that needs cloudpickle where the image has none fails here as it would fail there."""
    if paths:
        old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]
        os.environ["PYTHONPATH"] = os.pathsep.join(list(paths) + old)


def main(argv: list | None = None) -> None:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    # The agent's own zip (sys.path[0] when run as ``python agent.zip``) goes last: user code
    # never finds anything in it before what the target itself has. The host's serializers go
    # first, or with ``--serializers image`` after the target's own: used only where it has none.
    here = os.path.abspath(sys.path[0] or ".") if sys.path else ""
    ours = [p for p in sys.path if os.path.abspath(p or ".") == here]
    first, last = ([], opts.lib) if opts.serializers == "image" else (opts.lib, [])
    sys.path[:] = first + opts.path + [p for p in sys.path if os.path.abspath(p or ".") != here] + last + ours
    preload.KNOWN.libs = list(opts.lib) + list(opts.path)
    describe.HOST_LIBS[:] = opts.lib
    export_paths(opts.path)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if opts.stdio:
        rfd, wfd = os.dup(0), os.dup(1)
        os.dup2(2, 1)  # user prints must never corrupt the stream
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        try:
            serve(Channel(rfd, wfd))
        except EOFError as exc:
            print("agent: connection lost: %s" % exc, file=sys.stderr)
    else:
        serve_socket(opts.socket, opts.keep, opts.accept_timeout)


if __name__ == "__main__":
    main()
