"""A package no target has: its modules' dotted names (issue 25, test_capsule_fidelity.py)."""
