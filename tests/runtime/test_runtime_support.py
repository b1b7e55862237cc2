"""Shared helpers for the runtime tests: tiny CompressAI-class checkpoints and their exported bundles.

The tiny models are untrained, so their weights are nudged to make the test meaningful
(``train.models.seeded.codable_model``): the analysis output is scaled up (non-zero symbols) and the σ layer gets
biases spread over the scale table (σ not all clamped at the 0.11 bound), so the indexes really depend on the
parse-critical network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets" / "images"
KODAK = REPO.parent / "shared" / "data" / "kodak"


def test_image(h: int = 80, w: int = 112, seed: int = 0) -> np.ndarray:
    """A small smooth-plus-noise RGB image (deterministic), or a crop of a shipped image when there is one."""
    imgs = sorted(ASSETS.rglob("*.png")) + sorted(KODAK.glob("*.png"))
    if imgs:
        from runtime.image import load

        a = load(imgs[seed % len(imgs)])
        if a.shape[0] >= h and a.shape[1] >= w:
            return np.ascontiguousarray(a[:h, :w])
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(xx / 9.0 + c) * np.cos(yy / 7.0) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


test_image.__test__ = False  # a helper, not a test


def tiny_model(arch: str, seed: int = 0):
    """A tiny updated model of ``arch`` with weights nudged as the module docstring says."""
    from train.models.seeded import codable_model

    return codable_model(arch, preset="tiny", seed=seed)


def make_bundle(tmp: Path, arch: str, seed: int = 0):
    """(checkpoint path, bundle dir, model): save a tiny checkpoint and export it with ``python -m export.onnx``."""
    from train.checkpoint import save_checkpoint

    m = tiny_model(arch, seed)
    ck = tmp / f"{arch}.pth"
    save_checkpoint(ck, m, lmbda=0.01, metric="mse", step=0, epoch=0)
    out = tmp / f"{arch}.bundle"
    r = subprocess.run(
        [sys.executable, "-m", "export.onnx", str(ck), "-o", str(out), "--no-check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.fail(f"export.onnx failed: {r.stderr.strip().splitlines()[-1:]}")
    return ck, out, m


def test_tiny_models_have_unclamped_scales_and_nonzero_symbols():
    torch = pytest.importorskip("torch")
    for arch in ("bmshj2018-hyperprior", "mbt2018-mean"):
        m = tiny_model(arch)
        x = torch.from_numpy(test_image(64, 64).astype(np.float32).transpose(2, 0, 1)[None] / 255)
        with torch.no_grad():
            out = m.compress(x)
        assert len(out["strings"][0][0]) > 20  # y is not all zeros
        with torch.no_grad():
            y = m.g_a(x)
            p = m.h_s(torch.round(m.h_a(torch.abs(y) if arch == "bmshj2018-hyperprior" else y)))
        scales = p if arch == "bmshj2018-hyperprior" else p.chunk(2, 1)[0]
        assert (scales > 0.2).float().mean() > 0.5


def cached_bundle(tmp_path_factory, arch: str):
    """make_bundle once per test session (bundles are shared by the runtime test modules)."""
    root = tmp_path_factory.getbasetemp() / "runtime-bundles"
    root.mkdir(exist_ok=True)
    out = root / f"{arch}.bundle"
    if (out / "manifest.json").is_file():
        from runtime.backends.torch_ref import load_checkpoint

        return root / f"{arch}.pth", out, load_checkpoint(root / f"{arch}.pth")
    return make_bundle(root, arch)


class Perturb:
    """Wraps a backend; ``fn(graph, outputs)`` edits the outputs (for determinism tests)."""

    def __init__(self, inner, fn):
        self.inner, self.fn, self.name = inner, fn, getattr(inner, "name", "?")

    def run(self, graph, feeds):
        return self.fn(graph, dict(self.inner.run(graph, feeds)))


def record_progress(call):
    """``call(progress)`` with a recording callback; returns (its result, the (done, total) calls), checked as
    runtime/plans/context.py promises: done rises by one from 1, total never falls nor lags done, the last
    call has done == total, and the plan announced its calls up front (at most two totals: the fixed graph
    calls, then once a loop's length is known)."""
    seen: list[tuple[int, int]] = []
    out = call(lambda done, total: seen.append((done, total)))
    assert seen, "progress was never called"
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert all(t >= d for d, t in seen) and all(a[1] <= b[1] for a, b in zip(seen, seen[1:]))
    assert seen[-1][0] == seen[-1][1]
    assert len({t for _, t in seen}) <= 2, seen
    return out, seen
