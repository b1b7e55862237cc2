"""The PyTorch reference backend: runs a bundle's graphs as the modules that ``train.graphs`` defines for the
model, the same modules the exporter turns into ONNX files.

The bundle carries no weights for torch, so this backend is built from a model object or a checkpoint
(``Codec.from_model(model)``, ``Codec.open(bundle, backend="torch", checkpoint=...)``).  It is the only
runtime module that imports torch and ``train``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..bundle import FORMAT, FORMAT_VERSION, Bundle, graph_role, tables_from_arrays
from . import BackendError


def plan_kind_of(model) -> str:
    """The coding-plan kind of a model (``train.graphs.plan_kind_of``), as a :class:`BackendError` if unknown."""
    from train.graphs import GraphError
    from train.graphs import plan_kind_of as _kind

    try:
        return _kind(model)
    except GraphError as e:
        raise BackendError(f"the torch backend does not know the coding plan: {e}") from None


def _graphs(model, kind: str):
    from train.graphs import GraphError, plan_graphs

    try:
        return plan_graphs(model, kind)
    except GraphError as e:
        raise BackendError(f"the torch backend cannot run plan '{kind}': {e}") from None


def load_checkpoint(path, arch: str | None = None, device: str = "cpu"):
    """Rebuild a model from a lictrt checkpoint, or a bare state_dict with ``arch`` named (train.checkpoint)."""
    try:
        from train.checkpoint import CheckpointError
        from train.checkpoint import load_checkpoint as _load
    except ImportError as e:
        raise BackendError(f"the torch backend needs the train package to read checkpoints: {e}") from None
    try:
        model, _meta = _load(path, arch=arch)
    except CheckpointError as e:
        raise BackendError(str(e)) from None
    return model.eval().to(device)


def check_matches(model, bundle: Bundle, source="the model") -> None:
    """Raise BackendError unless ``model`` is the model ``bundle`` was exported from (architecture, then hash)."""
    from train.coding import CodingError, coder_tables, model_hash

    want = bundle.manifest.get("model", {})
    arch = getattr(model, "lictrt_arch", None)
    if arch and want.get("arch") and arch != want["arch"]:
        raise BackendError(f"{source} holds a {arch!r} model but the bundle was exported from {want['arch']!r}")
    widths = bundle.plan.get("widths") if getattr(model, "widths", None) else None
    try:
        digest = model_hash(model, coder_tables(model, bundle.plan_kind, widths))
    except CodingError as e:
        raise BackendError(f"{source}: {e}") from None
    if digest != bundle.model_hash.hex():
        raise BackendError(
            f"{source} is not the model the bundle was exported from (model hash {digest[:12]}…, "
            f"bundle {bundle.model_hash.hex()[:12]}…)"
        )


def bundle_from_model(model, kind: str | None = None) -> Bundle:
    """An in-memory bundle (no ONNX files) describing ``model``, with the exporter's tables and model hash."""
    from train.coding import CodingError, coder_tables, model_hash

    kind = kind or plan_kind_of(model)
    try:
        arrays = coder_tables(model, kind)
    except CodingError as e:
        raise BackendError(str(e)) from None
    from train.graphs import plan_manifest

    graphs, defined = {}, _graphs(model, kind)
    for g in defined:
        role, critical = graph_role(g.name)
        graphs[g.name] = {
            "file": None,
            "role": role,
            "parse_critical": critical,
            "precision": "fp32",
            "inputs": [{"name": n} for n in g.inputs],
            "outputs": [{"name": n} for n in g.outputs],
        }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"arch": type(model).__name__, "config": {}, "hash": model_hash(model, arrays)},
        "pad_multiple": int(getattr(model, "pad_multiple", 64 if kind != "factorized" else 16)),
        "precision": "fp32",
        "plan": plan_manifest(model, kind, defined),
        "graphs": graphs,
        "engines": {},
    }
    return Bundle.from_parts(manifest, tables_from_arrays(arrays))


def cuda_available() -> bool:
    return torch.cuda.is_available()


@contextlib.contextmanager
def strict_fp32_cuda():
    """IEEE fp32 on CUDA for the block: no TF32 in convolutions or matrix products, deterministic cuDNN
    algorithms, no autotuning (PyTorch's default lets cuDNN convolutions use TF32)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32)
    cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32 = False, False, True, False
    try:
        yield
    finally:
        cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32 = saved


class TorchBackend:
    """Runs graphs as the model's graph modules in fp32 under ``torch.no_grad``; ``strict_fp32`` (parse paths)
    also rules out TF32 and nondeterministic cuDNN algorithms on a GPU."""

    def __init__(
        self,
        model,
        kind: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        strict_fp32: bool = False,
    ):
        self.kind = kind or plan_kind_of(model)
        self.device = torch.device(device or "cpu")
        self.model = model.eval().to(self.device)
        if threads:
            torch.set_num_threads(int(threads))
        self.name = f"torch-{self.device.type}"
        self.strict_fp32 = strict_fp32
        self._graphs = {g.name: g for g in _graphs(self.model, self.kind)}

    def run(self, graph: str, feeds: dict) -> dict:
        g = self._graphs.get(graph)
        if g is None:
            raise BackendError(f"the torch backend has no graph '{graph}' for plan '{self.kind}'")
        strict = self.strict_fp32 and self.device.type == "cuda"
        with torch.no_grad(), strict_fp32_cuda() if strict else contextlib.nullcontext():
            t = {
                k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(self.device) for k, v in feeds.items()
            }
            out = g(t)
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}
