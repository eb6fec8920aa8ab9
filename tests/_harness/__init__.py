"""Internals of tests/harness.py: values, stack config, state, planning, the mock monitor, reports."""
