"""Kernel sections: accuracy of the CUDA kernels against float64 references, and their speed against the
PyTorch implementations and the measured HBM roofline.

Accuracy: fresh random inputs (a seed drawn per run and recorded), outputs and workspace poisoned with NaN
before each kernel run (``trt_plugins.reference.run_*_poisoned``); relative error = max |y - ref| / max |ref|.
Speed: CUDA events, median after warm-up, rotating input sets (``roofline.rotation_sets``).
"""

from __future__ import annotations

import functools
import os

from . import roofline
from .budget import SectionContext
from .schema import derive, error_text
from .timing import time_cuda

STAGE_SHAPES = {  # (B, Di, H, W, N, R): first VSS stage of a 768x512 image (tokens at H/2 x W/2), R = dt rank
    "ssmic-stage1-768x512": (1, 256, 256, 384, 16, 8),
    "mambavc-stage1-768x512": (1, 512, 256, 384, 16, 16),
}
SCAN_ACCURACY = {"small-odd": (2, 37, 33, 65, 16, 3), **STAGE_SHAPES}
SCAN_TOL = {"fp32": 1e-4, "fp16": 1e-2}
GDN_TOL = {"fp32": 1e-5, "fp16": 1e-2}
GDN_ACCURACY = {
    "bmshj2018-latent-192x32x48": (1, 192, 32, 48),
    "bmshj2018-largest-128x256x384": (1, 128, 256, 384),
    "bmshj2018-q8-largest-192x256x384": (1, 192, 256, 384),
}
# bmshj2018 GDN/IGDN activations for a 768x512 image: N = 128 (q1-5) or 192 (q6-8) at 1/2, 1/4, 1/8 scale
GDN_TIMING = {f"N{n}-{h}x{w}": (1, n, h, w) for n in (128, 192) for (h, w) in ((256, 384), (128, 192), (64, 96))}
COPY_BYTES = 1 << 30


def fresh_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


def _dtypes():
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16}


def load_kernels(ctx: SectionContext):
    """``(kernels, None)``, or ``(None, the one-line reason)`` when the CUDA kernels library is unusable;
    ``(None, None)`` on a dry run."""
    if ctx.dry_run:
        return None, None
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        from trt_plugins.harness import Kernels

        return Kernels.load(), None
    except Exception as exc:
        return None, error_text(exc)


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy(ctx: SectionContext) -> dict:
    """Kernel vs float64 reference at small odd and first-stage shapes, fp32 and fp16, poisoned outputs."""
    k, load_error = load_kernels(ctx)
    out = {
        "kernels_library": None if k is None else k.version(),
        "selective_scan_2d": {},
        "generalized_divisive_norm": {},
    }
    if load_error:
        out["load_error"] = load_error

    def unusable():
        raise RuntimeError(f"kernels library not loaded ({load_error})")

    for name, shape in SCAN_ACCURACY.items():
        seed = fresh_seed()
        units = {f"rel_err_{d}": "max|err|/max|ref|" for d in SCAN_TOL}
        units.update({f"nonfinite_{d}": "elements" for d in SCAN_TOL})
        units["torch_chunked_rel_err_fp32"] = "max|err|/max|ref|"
        fn = unusable if load_error else functools.partial(_scan_case, k, shape, seed, name == "small-odd")
        figs = ctx.measure_many(units, fn, need_s=20 if name != "small-odd" else 2)
        for d, tol in SCAN_TOL.items():
            figs[f"rel_err_{d}"]["tolerance"] = tol
        out["selective_scan_2d"][name] = {"shape_B_Di_H_W_N_R": list(shape), "seed": seed, **figs}
    for name, shape in GDN_ACCURACY.items():
        for inverse in (False, True):
            seed = fresh_seed()
            units = {f"rel_err_{d}": "max|err|/max|ref|" for d in GDN_TOL}
            units.update({f"nonfinite_{d}": "elements" for d in GDN_TOL})
            units["torch_fp32_rel_err"] = "max|err|/max|ref|"
            fn = unusable if load_error else functools.partial(_gdn_case, k, shape, seed, inverse)
            figs = ctx.measure_many(units, fn, need_s=2)
            for d, tol in GDN_TOL.items():
                figs[f"rel_err_{d}"]["tolerance"] = tol
            key = f"{'igdn' if inverse else 'gdn'}-{name}"
            out["generalized_divisive_norm"][key] = {
                "shape_B_C_H_W": list(shape),
                "inverse": inverse,
                "seed": seed,
                **figs,
            }
    return out


def _empty_cache():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _scan_case(k, shape, seed, with_chunked, device="cuda"):
    """Kernel (fp32, fp16) vs the float64 reference; ``device="cpu"`` with the CPU-emulated kernels (tests)."""
    import torch

    from trt_plugins.reference import rel_err, run_scan_poisoned, scan_inputs, ss2d_reference

    inputs = scan_inputs(*shape[:5], seed=seed, device=device, R=shape[5])
    ref = ss2d_reference(*inputs)
    values = {}
    for d, dtype in _dtypes().items():
        y = run_scan_poisoned(k, inputs, dtype)
        values[f"nonfinite_{d}"] = int((~torch.isfinite(y)).sum().item())
        values[f"rel_err_{d}"] = rel_err(y, ref)
        del y
    if with_chunked:
        from train.layers import ss2d

        values["torch_chunked_rel_err_fp32"] = rel_err(ss2d.selective_scan_2d(*inputs, True), ref)
    del ref, inputs
    _empty_cache()
    return values


def _gdn_case(k, shape, seed, inverse, device="cuda"):
    import torch

    from trt_plugins.reference import gdn_inputs, gdn_reference, rel_err, run_gdn_poisoned

    values = {}
    for d, dtype in _dtypes().items():
        x, gamma, beta = gdn_inputs(*shape, seed=seed, dtype=dtype, device=device)
        y = run_gdn_poisoned(k, x, gamma, beta, inverse)
        ref = gdn_reference(x, gamma, beta, inverse)
        values[f"nonfinite_{d}"] = int((~torch.isfinite(y)).sum().item())
        values[f"rel_err_{d}"] = rel_err(y, ref)
        if d == "fp32":
            values["torch_fp32_rel_err"] = rel_err(torch_gdn(x, gamma, beta, inverse), ref)
    _empty_cache()
    return values


def torch_gdn(x, gamma, beta, inverse=False):
    """PyTorch's decomposition of GDN: x^2 -> 1x1 conv (+beta) -> sqrt -> div (IGDN: mul), the sum in fp32."""
    import torch.nn.functional as F

    xf = x.float()
    norm = F.conv2d(xf * xf, gamma[:, :, None, None], beta).sqrt()
    y = xf * norm if inverse else xf / norm
    return y.to(x.dtype)


# ---------------------------------------------------------------------------------------------- speed
def speed(ctx: SectionContext) -> dict:
    """HBM copy ceiling; scan kernel vs chunked and four-copy PyTorch; GDN kernel vs PyTorch decomposition."""
    k, load_error = load_kernels(ctx)
    iters = int(ctx.options.get("iters", 100))
    out: dict = {"iters_requested": iters}
    if load_error:
        out["load_error"] = load_error

    out["hbm_copy"] = ctx.measure_many(
        {"median_ms": "ms", "bandwidth": "GB/s"},
        lambda: _copy_bandwidth(ctx, iters),
        need_s=5,
        bytes_copied=COPY_BYTES,
        note="device-to-device copy; bandwidth counts bytes read + written",
    )
    peak = out["hbm_copy"]["bandwidth"]

    def unusable():
        raise RuntimeError(f"kernels library not loaded ({load_error})")

    scan = out["selective_scan_2d"] = {}
    for name, shape in STAGE_SHAPES.items():
        for d in ("fp32", "fp16"):
            itemsize = 4 if d == "fp32" else 2
            nbytes = roofline.ss2d_min_bytes(*shape, itemsize)
            fn = unusable if load_error else functools.partial(_time_scan_kernel, ctx, k, shape, d, iters)
            ms = ctx.measure("ms", fn, need_s=5, what="CUDA kernel (liblictrt_kernels)")
            case = {
                "shape_B_Di_H_W_N_R": list(shape),
                "dtype": d,
                "min_bytes": nbytes,
                "kernel_median": ms,
                "kernel_bandwidth": derive(lambda t: roofline.gb_per_s(nbytes, t), "GB/s", ms),
                "kernel_roofline": derive(
                    lambda t, p: roofline.roofline_percent(nbytes, t, p), "% of HBM copy", ms, peak
                ),
                "memory_floor": derive(lambda p: roofline.floor_ms(nbytes, p), "ms", peak),
            }
            if d == "fp32":  # the PyTorch forms at both shapes; the four-copy one at SSMIC's only
                chunk = ctx.measure(
                    "ms",
                    functools.partial(_time_scan_torch, ctx, shape, "chunked"),
                    need_s=30,
                    what="train.layers.ss2d.selective_scan_2d (chunked, natural layout)",
                )
                case.update(
                    {"torch_chunked_median": chunk, "speedup_vs_chunked": derive(lambda a, b: a / b, "x", chunk, ms)}
                )
            if name.startswith("ssmic") and d == "fp32":
                four = ctx.measure(
                    "ms",
                    functools.partial(_time_scan_torch, ctx, shape, "fourcopy"),
                    need_s=30,
                    what="CrossScan 4x copies -> chunked scan -> CrossMerge",
                )
                case.update(
                    {
                        "torch_fourcopy_median": four,
                        "speedup_vs_fourcopy": derive(lambda a, b: a / b, "x", four, ms),
                    }
                )
            scan[f"{name}-{d}"] = case

    gdn = out["generalized_divisive_norm"] = {}
    for name, (B, C, H, W) in GDN_TIMING.items():
        for d in ("fp32", "fp16"):
            for inverse in (False, True) if H == 256 else (False,):
                itemsize = 4 if d == "fp32" else 2
                nbytes = roofline.gdn_min_bytes(B, C, H, W, itemsize)
                kfn = (
                    unusable
                    if load_error
                    else functools.partial(_time_gdn, ctx, k, (B, C, H, W), d, inverse, iters, "kernel")
                )
                tfn = functools.partial(_time_gdn, ctx, k, (B, C, H, W), d, inverse, iters, "torch")
                kms = ctx.measure("ms", kfn, need_s=2, what="CUDA kernel")
                tms = ctx.measure("ms", tfn, need_s=2, what="x^2 -> conv1x1 -> sqrt -> div (fp32 sum)")
                gdn[f"{'igdn' if inverse else 'gdn'}-{name}-{d}"] = {
                    "shape_B_C_H_W": [B, C, H, W],
                    "dtype": d,
                    "inverse": inverse,
                    "min_bytes": nbytes,
                    "kernel_median": kms,
                    "torch_median": tms,
                    "speedup_vs_torch": derive(lambda a, b: a / b, "x", tms, kms),
                    "kernel_bandwidth": derive(lambda t: roofline.gb_per_s(nbytes, t), "GB/s", kms),
                    "kernel_roofline": derive(
                        lambda t, p: roofline.roofline_percent(nbytes, t, p), "% of HBM copy", kms, peak
                    ),
                }
    return out


def _meta(t: dict) -> dict:
    meta = {k: t[k] for k in ("runs", "warmup", "input_sets", "min_ms", "max_ms", "host_enqueue_ms")}
    if t.get("launch_bound"):
        meta["note"] = "launch-bound: host enqueue time >= 80% of the median; the device time is lower"
    return meta


def _deadline(ctx: SectionContext, share: float = 0.25) -> float:
    """A single measurement may use at most ``share`` of what the section has left."""
    return ctx.clock() + max(1.0, ctx.left() * share)


def _copy_bandwidth(ctx, iters):
    import torch

    n = COPY_BYTES // 4
    src = [torch.randn(n, device="cuda") for _ in range(2)]
    dst = torch.empty_like(src[0])
    t = time_cuda([lambda s=s: dst.copy_(s) for s in src], warmup=5, iters=min(iters, 50), deadline=_deadline(ctx))
    del src, dst
    torch.cuda.empty_cache()
    return {
        "median_ms": t["median_ms"],
        "bandwidth": roofline.gb_per_s(roofline.copy_bytes(COPY_BYTES), t["median_ms"]),
    }


def _l2_and_free():
    import torch

    props = torch.cuda.get_device_properties(0)
    free, _total = torch.cuda.mem_get_info()
    return int(getattr(props, "L2_cache_size", 0) or 0), int(free)


def _scan_set(shape, dtype, device="cuda"):
    import torch

    B, Di, H, W, N, R = shape
    u = torch.randn(B, Di, H, W, device=device).to(dtype)
    dts = torch.randn(B, 4, R, H, W, device=device).to(dtype)
    Bs = torch.randn(B, 4, N, H, W, device=device).to(dtype)
    Cs = torch.randn(B, 4, N, H, W, device=device).to(dtype)
    return u, dts, Bs, Cs


def _scan_weights(shape, device="cuda"):
    """dt_weight, A, D, delta_bias: delta = dt_proj(dts) about N(-1, 0.5^2) before the softplus."""
    import torch

    B, Di, H, W, N, R = shape
    A = -torch.exp(
        torch.log(torch.arange(1, N + 1, dtype=torch.float32, device=device)).repeat(4 * Di, 1)
        + 0.1 * torch.randn(4 * Di, N, device=device)
    )
    dt_weight = torch.randn(4 * Di, R, device=device) * (0.5 / R**0.5)
    bias = -1.0 + 0.1 * torch.randn(4 * Di, device=device)
    return dt_weight, A, torch.randn(4 * Di, device=device), bias


def _time_scan_kernel(ctx, k, shape, d, iters):
    import torch

    from trt_plugins.harness import FP16, FP32

    dtype = _dtypes()[d]
    B, Di, H, W, N, R = shape
    l2, free = _l2_and_free()
    per_set = roofline.ss2d_min_bytes(*shape, 4 if d == "fp32" else 2)
    sets = [_scan_set(shape, dtype) for _ in range(roofline.rotation_sets(per_set, l2, free, max_sets=4))]
    w, A, D, bias = _scan_weights(shape)
    out = torch.empty_like(sets[0][0])
    ws = torch.empty(
        max(1, k.ss2d_workspace_size(B, Di, H, W, N, R, FP32 if d == "fp32" else FP16)),
        dtype=torch.uint8,
        device="cuda",
    )
    fns = [lambda s=s: k.selective_scan_2d(s[0], s[1], w, A, s[2], s[3], D, bias, out=out, workspace=ws) for s in sets]
    t = time_cuda(fns, warmup=10, iters=iters, deadline=_deadline(ctx))
    del sets, out, ws
    torch.cuda.empty_cache()
    return t["median_ms"], _meta(t)


def _time_scan_torch(ctx, shape, variant):
    import torch

    from train.layers import scan as scan_mod
    from train.layers import ss2d

    sets = [_scan_set(shape, torch.float32) for _ in range(2)]
    w, A, D, bias = _scan_weights(shape)
    if variant == "chunked":
        fns = [lambda s=s: ss2d.selective_scan_2d(s[0], s[1], w, A, s[2], s[3], D, bias, True) for s in sets]
    else:
        scan_fn = functools.partial(scan_mod.selective_scan_chunked, chunk=ss2d.SCAN_CHUNK)
        fns = [
            lambda s=s: ss2d.selective_scan_2d_fourcopy(s[0], s[1], w, A, s[2], s[3], D, bias, True, scan_fn=scan_fn)
            for s in sets
        ]
    with torch.no_grad():
        t = time_cuda(fns, warmup=1, iters=10, min_iters=2, deadline=_deadline(ctx, 0.3))
    del sets
    torch.cuda.empty_cache()
    return t["median_ms"], {**_meta(t), "chunk": ss2d.SCAN_CHUNK}


def _time_gdn(ctx, k, shape, d, inverse, iters, impl):
    import torch

    dtype = _dtypes()[d]
    B, C, H, W = shape
    l2, free = _l2_and_free()
    per_set = roofline.gdn_min_bytes(B, C, H, W, 4 if d == "fp32" else 2)
    xs = [
        torch.randn(B, C, H, W, device="cuda").to(dtype)
        for _ in range(roofline.rotation_sets(per_set, l2, free, max_sets=8))
    ]
    gamma = 0.1 * torch.eye(C, device="cuda") + 1e-3 * torch.rand(C, C, device="cuda")
    beta = 1.0 + 0.1 * torch.rand(C, device="cuda")
    out = torch.empty_like(xs[0])
    if impl == "kernel":
        fns = [lambda x=x: k.generalized_divisive_norm(x, gamma, beta, inverse=inverse, out=out) for x in xs]
    else:
        fns = [lambda x=x: torch_gdn(x, gamma, beta, inverse) for x in xs]
    with torch.no_grad():
        t = time_cuda(fns, warmup=10, iters=iters, deadline=_deadline(ctx, 0.05))
    del xs, out
    return t["median_ms"], _meta(t)
