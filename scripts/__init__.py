"""Operator tools: data generators, benchmarks, debugging."""
