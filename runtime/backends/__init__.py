"""Backends run a bundle's named graphs: ``run(graph_name, feeds: dict[str, ndarray]) -> dict[str, ndarray]``.

``ort`` (ONNX Runtime, also the pinned parse path), ``torch_ref`` (PyTorch reference, the only module that
imports torch) and ``tensorrt`` (engines from the bundle, import-guarded).  Importing this package imports
none of them.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend is unavailable or cannot run a graph."""
