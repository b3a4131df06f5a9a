"""Side-by-side benchmarks of pytest-remote-serial against its floors and peers
(docs/architecture.md, "Performance floors").

The machines this runs on are shared and noisy, so a number on its own means little: every
figure is taken in one run, interleaved with the floor it is compared to, and reported as a
median and a ratio. Run ``python -m benchmarks`` (or ``nox -s bench``) from the repository root.
"""
