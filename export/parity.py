"""Parity: every exported graph in ONNX Runtime CPU vs the PyTorch model, on random and real images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.stages import Stage
from runtime import native_ops

FP32_REL_TOL = 1e-4  # fp32: max |ort - torch| <= 1e-4 * max |torch|, per output
FP16_REL_TOL = None  # fp16: reported, not enforced (reconstruction-only graphs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm")


class ParityError(RuntimeError):
    """An exported graph disagrees with PyTorch beyond the threshold."""


@dataclass
class ParityResult:
    graph: str
    input: str  # "random HxW" / "<image> HxW"
    output: str
    max_abs: float
    rel: float  # max_abs / max|ref|
    tol: float | None

    @property
    def ok(self) -> bool:
        return self.tol is None or self.rel <= self.tol


def ort_session(path_or_bytes, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = False  # the scan bodies' big temporaries: return memory between runs
    native_ops.register_onnxruntime(so)  # lictrt ops as native kernels (function bodies without the library)
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def find_image(repo_root: Path | None = None) -> Path | None:
    """A real photo: ``assets/images/*`` of the repo, else ``../shared/data/kodak`` next to it, else None."""
    root = repo_root or Path(__file__).resolve().parents[1]
    for d in (root / "assets" / "images", root.parent / "shared" / "data" / "kodak"):
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                return files[0]
    return None


def load_image(path: Path, H: int, W: int) -> torch.Tensor:
    """[1,3,H,W] float in [0,1]: the image centre-cropped (tiled if smaller) to H x W."""
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    if a.shape[0] < H or a.shape[1] < W:
        a = np.tile(a, (H // a.shape[0] + 1, W // a.shape[1] + 1, 1))
    t, l = (a.shape[0] - H) // 2, (a.shape[1] - W) // 2
    return torch.from_numpy(np.ascontiguousarray(a[t : t + H, l : l + W].transpose(2, 0, 1)))[None]


def expected(stage: Stage, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(inputs, expected outputs) of ``stage`` for image ``x``, from the fp32 PyTorch model."""
    with torch.no_grad():
        inputs = stage.example(x)
        if stage.oracle is not None:
            ref = stage.oracle(x)
        else:
            ref = (stage.reference or stage.module)(*inputs)
    return inputs, ref if isinstance(ref, tuple) else (ref,)


def check_graph(stage: Stage, session, x: torch.Tensor, label: str) -> list[ParityResult]:
    inputs, ref = expected(stage, x)
    outs = session.run(stage.outputs, {n: t.numpy() for n, t in zip(stage.inputs, inputs)})
    tol = FP32_REL_TOL if stage.precision == "fp32" else FP16_REL_TOL
    res = []
    for name, o, r in zip(stage.outputs, outs, ref):
        r = r.detach().float().numpy()
        if o.shape != r.shape:
            raise ParityError(f"{stage.name}.{name}: ONNX shape {o.shape} != PyTorch {r.shape} ({label})")
        err = float(np.abs(o.astype(np.float64) - r).max()) if r.size else 0.0
        scale = float(np.abs(r).max()) if r.size else 0.0
        res.append(ParityResult(stage.name, label, name, err, err / scale if scale > 0 else err, tol))
    return res


def check_stages(
    stages: list[Stage],
    paths: dict[str, Path],
    sizes: list[tuple[int, int]],
    image: Path | None = None,
    seed: int = 0,
    progress=None,
) -> list[ParityResult]:
    """ORT vs PyTorch for every stage: the real ``image`` (if any) at the first size, random input at the others
    (at every size when there is no image).  One real + one random size keeps SSM graphs affordable on CPU."""
    results: list[ParityResult] = []
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for i, (H, W) in enumerate(sizes):
        if i == 0 and image is not None:
            inputs.append((f"{image.name} {H}x{W}", load_image(image, H, W)))
        else:
            inputs.append((f"random {H}x{W}", torch.rand(1, 3, H, W, generator=g)))
    for st in stages:
        sess = ort_session(paths[st.name], threads=torch.get_num_threads())  # as many threads as PyTorch's
        for label, x in inputs:
            results += check_graph(st, sess, x, label)
            if progress is not None:
                progress.update(1)
        del sess  # one graph's session (weights, buffers) alive at a time
    return results


def assert_ok(results: list[ParityResult]) -> None:
    bad = [r for r in results if not r.ok]
    if bad:
        r = max(bad, key=lambda r: r.rel / r.tol)
        raise ParityError(
            f"parity failed: {r.graph}.{r.output} on {r.input}: rel err {r.rel:.2e} > {r.tol:.0e}"
            f" ({len(bad)} failing checks)"
        )
