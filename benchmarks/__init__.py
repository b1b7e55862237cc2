"""Measurement and reporting: latency, MACs, rate-distortion, coder throughput, the demo."""
