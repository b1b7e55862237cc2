"""Repository-wide pytest policy: tests marked `gpu` or `trt` skip, with the reason, where the machine lacks them."""

from __future__ import annotations

import importlib.util

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _full_tensorrt_available() -> bool:
    # `tensorrt` (full TensorRT, plugins, trtexec) is never on PyPI in usable form; TensorRT-RTX is `tensorrt_rtx`.
    return importlib.util.find_spec("tensorrt") is not None


def pytest_collection_modifyitems(config, items):
    skip_gpu = None if _cuda_available() else pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    skip_trt = (
        None
        if _full_tensorrt_available()
        else pytest.mark.skip(reason="needs a full TensorRT install (not installable from PyPI; set it up yourself)")
    )
    for item in items:
        if skip_gpu and "gpu" in item.keywords:
            item.add_marker(skip_gpu)
        if skip_trt and "trt" in item.keywords:
            item.add_marker(skip_trt)
