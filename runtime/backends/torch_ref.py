"""The PyTorch reference backend: maps a bundle's graph names onto the model's submodules.

The bundle carries no weights for torch, so this backend is built from a model object or a checkpoint
(``Codec.from_model(model)``, ``Codec.open(bundle, backend="torch", checkpoint=...)``).  It is the only
runtime module that imports torch.

Graph mapping (I/O names as in docs/FORMATS.md):
  analysis         x → y = g_a(x), z = h_a(|y|) (ScaleHyperprior) or h_a(y) (MeanScaleHyperprior)
  hyper_synthesis  z_hat → scales = h_s(z_hat)  |  scales, means = h_s(z_hat).chunk(2, 1)
  context_step     (params [P,2M], windows [P,M,5,5]) → scales, means [P,M]   (spatial_context)
  hyper_synthesis  z_hat → latent_means, latent_scales = model.hyper_synthesis(z_hat)   (channel_slices)
  slice<i>, lrp<i> model.slice_params(i, …) → mu, scale; model.slice_lrp(i, atten_mean[i](…), y_hat_i) → lrp
  synthesis        y_hat → x_hat = g_s(y_hat)   (the runtime clamps)
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np
import torch

from ..bundle import FORMAT, FORMAT_VERSION, Bundle, tables_hash, tables_from_arrays
from . import BackendError

def plan_kind_of(model) -> str:
    """The coding-plan kind of a model: its train registry entry, else its CompressAI class."""
    arch = getattr(model, "lictrt_arch", None)
    if arch:
        try:
            from train.models import ARCHS

            if arch in ARCHS:
                return ARCHS[arch].coding_plan
        except ImportError:
            pass
    plan = getattr(model, "coding_plan", None)
    if isinstance(plan, str):
        return plan
    from compressai.models import google as g

    if isinstance(model, g.JointAutoregressiveHierarchicalPriors):
        return "spatial_context"
    if isinstance(model, g.MeanScaleHyperprior):
        return "mean_scale"
    if isinstance(model, g.ScaleHyperprior):
        return "hyperprior"
    if isinstance(model, g.FactorizedPrior):
        return "factorized"
    raise BackendError(f"the torch backend does not know the coding plan of {type(model).__name__}")


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


def model_tables(model, kind: str) -> dict[str, np.ndarray]:
    """The tables.npz arrays of a model, read from its (updated) entropy-model buffers."""
    out: dict[str, np.ndarray] = {}

    def coder(prefix, em):
        if em._quantized_cdf.numel() == 0:
            raise BackendError("the model's CDF tables are empty: call model.update(force=True) first")
        out[f"{prefix}.cdf"] = em._quantized_cdf.detach().cpu().numpy().astype(np.int32)
        out[f"{prefix}.cdf_length"] = em._cdf_length.detach().cpu().numpy().astype(np.int32).reshape(-1)
        out[f"{prefix}.offset"] = em._offset.detach().cpu().numpy().astype(np.int32).reshape(-1)

    if kind == "grouped_slices":
        from train.models.gitssic import mask_tables

        out.update(mask_tables())
    eb_name = "y" if kind == "factorized" else "z"
    eb = model.entropy_bottleneck
    coder(eb_name, eb)
    out[f"{eb_name}.medians"] = eb.quantiles[:, 0, 1].detach().cpu().numpy().astype(np.float32)
    if kind != "factorized":
        gc = model.gaussian_conditional
        coder("y", gc)
        out["y.scale_table"] = gc.scale_table.detach().cpu().numpy().astype(np.float32)
        out["y.scale_bound"] = np.asarray(gc.lower_bound_scale.bound.detach().cpu().reshape(()).numpy(), np.float32)
    return out


def bundle_from_model(model, kind: str | None = None) -> Bundle:
    """An in-memory bundle (no ONNX files) describing ``model``; its hash covers weights and tables."""
    kind = kind or plan_kind_of(model)
    if kind not in ("factorized", "hyperprior", "mean_scale", "spatial_context", "channel_slices", "grouped_slices"):
        raise BackendError(f"the torch backend has no graph mapping for plan '{kind}' yet")
    arrays = model_tables(model, kind)
    tables = tables_from_arrays(arrays)
    try:  # the exporter's hash, so a from_model stream decodes with the exported bundle of the same weights
        from export.bundle import model_hash

        digest = model_hash(model, arrays)
    except ImportError:
        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(tables_hash(tables).encode())
        digest = h.hexdigest()

    def g(inputs, outputs, critical, role):
        return {"file": None, "role": role, "parse_critical": critical, "precision": "fp32",
                "inputs": [{"name": n} for n in inputs], "outputs": [{"name": n} for n in outputs]}

    graphs = {"analysis": g(["x"], ["y"] if kind == "factorized" else ["y", "z"], False, "encoder"),
              "synthesis": g(["y_hat"], ["x_hat"], False, "decoder")}
    if kind == "channel_slices":
        graphs["hyper_synthesis"] = g(["z_hat"], ["latent_means", "latent_scales"], True, "both")
        maxs = model.max_support_slices
        for i in range(model.num_slices):
            sup = [f"y_hat_{j}" for j in range(i if maxs < 0 else min(i, maxs))]
            graphs[f"slice{i}"] = g(["latent_means", "latent_scales"] + sup, ["mu", "scale"], True, "both")
            graphs[f"lrp{i}"] = g(["latent_means"] + sup + [f"y_hat_{i}"], ["lrp"], True, "both")
    elif kind == "grouped_slices":
        from train.models.gitssic import graphs as group_graphs

        graphs = {n: g(i, o, c, r) for n, (_, i, o, r, c) in group_graphs(model).items()}
    elif kind == "spatial_context":
        graphs["hyper_synthesis"] = g(["z_hat"], ["params"], True, "both")
        graphs["context_step"] = g(["params", "windows"], ["scales", "means"], True, "both")
    elif kind != "factorized":
        graphs["hyper_synthesis"] = g(["z_hat"], ["scales"] + (["means"] if kind == "mean_scale" else []), True, "both")
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "model": {"arch": type(model).__name__, "config": {}, "hash": digest},
                "pad_multiple": int(getattr(model, "pad_multiple", 64 if kind != "factorized" else 16)), "precision": "fp32",
                "plan": {"kind": kind, **({"mask_grid": 32, "scale_index": "nearest"}
                                          if kind == "grouped_slices" else {})},
                "graphs": graphs, "engines": {}}
    return Bundle.from_parts(manifest, tables)


class TorchBackend:
    """Runs graphs as the model's submodules in fp32 under ``torch.no_grad``."""

    def __init__(self, model, kind: str | None = None, device: str | None = None, threads: int | None = None):
        self.kind = kind or plan_kind_of(model)
        self.device = torch.device(device or "cpu")
        self.model = model.eval().to(self.device)
        if threads:
            torch.set_num_threads(int(threads))
        self.name = f"torch-{self.device.type}"
        m = self.model
        absy = self.kind == "hyperprior"
        self._graphs = {
            "analysis": self._analysis,
            "synthesis": lambda f: {"x_hat": m.g_s(f["y_hat"])},
        }
        self._absy = absy
        if self.kind in ("hyperprior", "mean_scale", "spatial_context"):
            self._graphs["hyper_synthesis"] = self._hyper_synthesis
        if self.kind == "spatial_context":
            self._graphs["context_step"] = self._context_step
        if self.kind == "channel_slices":
            self._graphs["hyper_synthesis"] = lambda f: dict(zip(("latent_means", "latent_scales"),
                                                                 m.hyper_synthesis(f["z_hat"])))
        if self.kind == "grouped_slices":  # GIT-SSIC: every graph is a module of train.models.gitssic
            from train.models.gitssic import graphs as group_graphs

            for name, (mod, ins, outs, _, _) in group_graphs(m).items():
                self._graphs[name] = functools.partial(self._module_graph, mod, ins, outs)

    @staticmethod
    def _module_graph(mod, ins, outs, f):
        res = mod(*[f[n] for n in ins])
        return dict(zip(outs, res if isinstance(res, tuple) else (res,)))

    def _analysis(self, f):
        y = self.model.g_a(f["x"])
        if self.kind == "factorized":
            return {"y": y}
        return {"y": y, "z": self.model.h_a(torch.abs(y) if self._absy else y)}

    def _hyper_synthesis(self, f):
        p = self.model.h_s(f["z_hat"])
        if self.kind == "spatial_context":
            return {"params": p}
        if self.kind == "hyperprior":
            return {"scales": p}
        scales, means = p.chunk(2, 1)
        return {"scales": scales, "means": means}

    def _context_step(self, f):
        """(params [P,2M], windows [P,M,5,5]) → scales, means [P,M]: masked conv on each window + 1×1 net."""
        cp = self.model.context_prediction
        w = cp.weight * getattr(cp, "mask", 1.0)
        ctx = torch.nn.functional.conv2d(f["windows"], w, cp.bias)
        g = self.model.entropy_parameters(torch.cat((f["params"][:, :, None, None], ctx), dim=1)).flatten(1)
        scales, means = g.chunk(2, 1)
        return {"scales": scales, "means": means}

    def _slice(self, i, f):
        m = self.model
        sup = [f[f"y_hat_{j}"] for j in range(i) if f"y_hat_{j}" in f]
        mu, scale, _ = m.slice_params(i, f["latent_means"], f["latent_scales"], sup)
        return {"mu": mu, "scale": scale}

    def _lrp(self, i, f):
        m = self.model
        sup = [f[f"y_hat_{j}"] for j in range(i) if f"y_hat_{j}" in f]
        mean_support = m.atten_mean[i](torch.cat([f["latent_means"]] + sup, dim=1))
        return {"lrp": m.slice_lrp(i, mean_support, f[f"y_hat_{i}"])}

    def run(self, graph: str, feeds: dict) -> dict:
        if self.kind == "channel_slices":
            mt = re.fullmatch(r"(slice|lrp)(\d+)", graph)
            if mt:
                fn = functools.partial(self._slice if mt.group(1) == "slice" else self._lrp, int(mt.group(2)))
                with torch.no_grad():
                    t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(self.device)
                         for k, v in feeds.items()}
                    return {k: v.detach().float().cpu().numpy() for k, v in fn(t).items()}
        fn = self._graphs.get(graph)
        if fn is None:
            raise BackendError(f"the torch backend has no graph '{graph}' for plan '{self.kind}'")
        with torch.no_grad():
            t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(self.device) for k, v in feeds.items()}
            out = fn(t)
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}
