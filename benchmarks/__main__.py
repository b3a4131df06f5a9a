"""``python -m benchmarks``: the whole suite, one table."""

from benchmarks.suite import main

raise SystemExit(main())
