"""Benchmarks for reportgen: synthetic data (``benchmarks.synth``) and timings (``benchmarks.run``)."""
