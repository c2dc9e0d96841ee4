"""Conformance runs: requirements as data, the Danish features as a test suite against a sharing system or a
vendor's documents, session records that can be rerun, and reports a reviewer reads."""
