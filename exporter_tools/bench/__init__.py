"""Benchmarks against the official SDK: cold start, memory, warm latency, throughput under a rate limit, what a
follow-up of finished exports costs, and package size (``make bench``, ``exporter-tools bench``). A development
tool: the function never imports it.
"""
