"""Toy programs and dynamic providers the harness tests deploy (side effects in a temp dir)."""
