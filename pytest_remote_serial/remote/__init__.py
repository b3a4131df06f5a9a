"""The far side: the agent that runs inside a target, a stdlib-only package for CPython 3.9 and
newer. The host ships it to a target as one zip (``host/bundle.py``), where it is the package
``_prs_agent``; the modules the host imports as well say so in their docstrings, and a change
to one of them is a protocol change (docs/architecture.md, "The two sides").
"""
