"""Everything a run reports, data apart from renderers (as pytest-benchmark keeps them).

- ``record``: the data: the JSON report, its rows, reading a baseline back.
- ``outputs``: the report files asked for on the command line, checked at the start, written at the end.
- ``workers``: the pytest-xdist hand-over of records from workers to the controller.
- ``compare``: a report against a baseline, and the gate CI sets on it.
- ``terminal``, ``html``, ``markdown``: renderers; they read the report dictionary only.
"""
