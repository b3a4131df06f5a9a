"""Peer evidence: other projects ' test suites run through the source capsule."""
