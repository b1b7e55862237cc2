"""lictrt CUDA kernels and TensorRT plugins (C++/CUDA); ``harness`` runs the kernels through ctypes."""
