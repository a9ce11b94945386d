"""Benchmarks of alb itself (selection speed and memory); not part of the test run."""
