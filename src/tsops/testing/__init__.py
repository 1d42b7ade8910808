"""Helpers shared by the test-suite and benchmarks (service detection, scratch projects)."""
