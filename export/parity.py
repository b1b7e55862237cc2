"""Parity: every exported graph in ONNX Runtime CPU vs the PyTorch model, on random and real images."""

from __future__ import annotations

import ctypes
import gc
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


def _release_free_heap() -> None:
    """Return the C heap's free memory to the system (glibc ``malloc_trim``; nothing elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


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


@dataclass
class Reference:
    """One check prepared on the PyTorch side: a graph's feeds for one image and the outputs it must give."""

    graph: str
    label: str
    precision: str
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def parity_inputs(sizes: list[tuple[int, int]], image: Path | None, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """(label, image tensor): the real ``image`` (if any) at the first size, random input at the others (at every
    size when there is no image). One real + one random size keeps SSM graphs affordable on CPU."""
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for i, (H, W) in enumerate(sizes):
        if i == 0 and image is not None:
            inputs.append((f"{image.name} {H}x{W}", load_image(image, H, W)))
        else:
            inputs.append((f"random {H}x{W}", torch.rand(1, 3, H, W, generator=g)))
    return inputs


def references(stages: list[Stage], inputs: list[tuple[str, torch.Tensor]], progress=None) -> list[Reference]:
    """Every stage's feeds and expected outputs for every input, computed by PyTorch. Only numpy arrays are kept,
    so the model can be released before ONNX Runtime runs (:func:`check_references`)."""
    refs = []
    for st in stages:
        for label, x in inputs:
            feeds, ref = expected(st, x)
            refs.append(
                Reference(
                    st.name,
                    label,
                    st.precision,
                    {n: t.detach().numpy() for n, t in zip(st.inputs, feeds)},
                    {n: r.detach().float().numpy() for n, r in zip(st.outputs, ref)},
                )
            )
            if progress is not None:
                progress.update(1)
    return refs


def compare(ref: Reference, outs: list[np.ndarray]) -> list[ParityResult]:
    """ONNX Runtime's ``outs`` (in the order of ``ref.outputs``) against the PyTorch outputs."""
    tol = FP32_REL_TOL if ref.precision == "fp32" else FP16_REL_TOL
    res = []
    for (name, r), o in zip(ref.outputs.items(), outs):
        if o.shape != r.shape:
            raise ParityError(f"{ref.graph}.{name}: ONNX shape {o.shape} != PyTorch {r.shape} ({ref.label})")
        err = float(np.abs(o.astype(np.float64) - r).max()) if r.size else 0.0
        scale = float(np.abs(r).max()) if r.size else 0.0
        res.append(ParityResult(ref.graph, ref.label, name, err, err / scale if scale > 0 else err, tol))
    return res


def check_references(
    refs: list[Reference], paths: dict[str, Path], threads: int | None = None, progress=None
) -> list[ParityResult]:
    """Run every reference's graph in ONNX Runtime and compare; one graph's session alive at a time, free heap
    memory handed back to the system before each, so the process peak is about one graph's run."""
    threads = threads or torch.get_num_threads()  # as many threads as PyTorch's
    results: list[ParityResult] = []
    for name in dict.fromkeys(r.graph for r in refs):
        _release_free_heap()
        sess = ort_session(paths[name], threads=threads)
        for ref in (r for r in refs if r.graph == name):
            results += compare(ref, sess.run(list(ref.outputs), ref.feeds))
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
