"""``python -m pytest_remote_serial images [target ...]``: build target images ahead of a run."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import sys
from pathlib import Path

from .host.backends.base import StartFailed
from .host.backends.containers import connect_engine, gpu_problem
from .host.backends.engines import default_engine, engine_for
from .host.images import BuildFailed, ImageBuilder
from .host.matrix import MatrixError, load_matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_remote_serial")
    sub = parser.add_subparsers(dest="command", required=True)
    images = sub.add_parser("images", help="build the images of the matrix's targets")
    images.add_argument("targets", nargs="*", help="target names (default: every CPU target)")
    images.add_argument("--matrix-file", help="matrix file (default lookup as in pytest)")
    opts = parser.parse_args(argv)
    progress = lambda msg: print(f"[remote-serial] {msg}", flush=True)  # noqa: E731
    try:
        matrix = load_matrix(Path.cwd(), opts.matrix_file)
        # Interpreter targets have no image; each container target's image goes to its engine.
        chosen = [t for t in matrix.select(opts.targets or None) if t.is_container]
        builders: dict[str, ImageBuilder] = {}
        for target in chosen:
            engine = engine_for(target)
            if engine.key not in builders:
                # A remote engine gets an image already built on the local one copied over.
                source = connect_engine if engine.remote and not default_engine().remote else None
                builders[engine.key] = ImageBuilder(connect_engine(engine), progress, source=source)
    except (MatrixError, StartFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not opts.targets:  # GPU images are large: only on request
        chosen = [t for t in chosen if not t.gpu or gpu_problem(builders[engine_for(t).key].client) is None]
    failed = 0
    with cf.ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
        futures = {pool.submit(builders[engine_for(t).key].ensure, t): t for t in chosen}
        for fut in cf.as_completed(futures):
            target = futures[fut]
            try:
                ref, took = fut.result()
                print(f"{target.name}: {ref} ({'built in %.0fs' % took if took else 'up to date'})")
            except BuildFailed as exc:
                failed += 1
                print(f"{target.name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
