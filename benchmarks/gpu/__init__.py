"""GPU validation suite: one device call builds the CUDA kernels, checks and times them, times the torch-CUDA
codecs end to end and tries TensorRT-RTX, and writes one JSON result (see benchmarks/gpu/README.md).

Modules: ``schema`` (the result document: figures with units or "not measured"), ``roofline`` (byte counts and
bandwidth arithmetic), ``timing`` (CUDA-event timing with rotating inputs), ``kernels`` (kernel accuracy and
speed), ``codec`` (end-to-end torch-CUDA codecs), ``rtx`` (TensorRT-RTX on the device), ``suite`` (the CLI).
"""
