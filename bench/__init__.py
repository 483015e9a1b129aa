"""Benchmark harness for jitorch (see bench/README.md)."""
