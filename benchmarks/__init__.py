"""Benchmarks of jaxsample against its peers: NumPy, naive JAX, Hugging Face and the floor.

Run ``python -m benchmarks`` for the full suite or ``python -m benchmarks --smoke`` for
a quick correctness-only pass on tiny sizes. Results (JSON, a markdown table and a plot)
are written to ``--out`` (default ``benchmarks/results/<device>-<date>/``).
"""
