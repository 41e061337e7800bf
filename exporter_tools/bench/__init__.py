"""Benchmarks against the official SDK: cold start, memory, warm latency, throughput under a rate limit and
package size (``make bench``, ``exporter-tools bench``). A development tool: the function never imports it.
"""
