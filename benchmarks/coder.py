"""`python -m benchmarks coder`: entropy-coder throughput in M symbols/s on a Gaussian-conditional latent.

Latent: 320 x 48 x 32 = 491,520 symbols (a 768x512 image at /16), CompressAI's default 64-level scale table
(`GaussianConditional(None).update_scale_table(get_scale_table())`). sigma distributions:
  channel      per-channel sigma_c log-uniform in [0.11, 4], times exp(N(0, 0.25^2)) per position (default)
  uniform_idx  sigma log-uniform over the whole table [0.11, 256], i.i.d. per symbol (cache worst case)
Symbols are round(N(0, sigma)); indexes follow CompressAI's build_indexes (smallest table entry >= sigma).

Coders, all in this one run, median of --repeats: lictrt fast (1 thread, 1 substream), lictrt fast with
--threads substreams on --threads threads, lictrt compat, CompressAI's raw `compressai.ans` binding with
prebuilt Python lists, and `GaussianConditional.compress/decompress` (tensor -> list conversions included).
Also checks that every decode is exact and that compat bytes equal CompressAI's.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from enum import Enum
from typing import Annotated, Optional

import numpy as np
import typer

from benchmarks.common import BenchmarkError, JsonOpt, RepeatsOpt, command_main, write_json
from runtime.cli import QuietOpt, VerboseOpt

SHAPE = (320, 48, 32)
REGIMES = ("channel", "uniform_idx")


def make_latent(regime: str, scale_table: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    c, h, w = SHAPE
    if regime == "channel":
        base = np.exp(rng.uniform(np.log(0.11), np.log(4.0), (c, 1, 1)))
        sigma = base * np.exp(rng.normal(0.0, 0.25, SHAPE))
    elif regime == "uniform_idx":
        sigma = np.exp(rng.uniform(np.log(0.11), np.log(256.0), SHAPE))
    else:
        raise BenchmarkError(f"unknown sigma regime {regime!r} (known: {', '.join(REGIMES)})")
    sigma = np.maximum(sigma.astype(np.float32), np.float32(scale_table[0]))
    idx = np.searchsorted(scale_table[:-1], sigma, side="left").astype(np.int32).reshape(-1)
    sym = np.round(rng.normal(0.0, sigma)).astype(np.int32).reshape(-1)
    return sigma, sym, idx


def timed(fn, repeats: int):
    """(median seconds, last result) over `repeats` calls after one warm-up call."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    timed.best = min(times)
    return statistics.median(times), result


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_regime(regime: str, repeats: int, threads: int, tables_np, gc, coder, progress) -> dict:
    import torch
    from compressai import ans

    cdf, lengths, offsets = tables_np
    tables = coder.CoderTables(cdf, lengths, offsets)
    sigma, sym, idx = make_latent(regime, gc.scale_table.numpy())
    n = sym.size
    rows = {}

    best = {}

    def record(name, enc_s, dec_s, nbytes, exact, note=""):
        rows[name] = {
            "encode_msym_s": n / enc_s / 1e6,
            "decode_msym_s": n / dec_s / 1e6,
            "encode_best_msym_s": n / best["enc"] / 1e6,
            "decode_best_msym_s": n / best["dec"] / 1e6,
            "encode_ms": enc_s * 1e3,
            "decode_ms": dec_s * 1e3,
            "bytes": nbytes,
            "bits_per_symbol": 8 * nbytes / n,
            "exact": bool(exact),
            "note": note,
        }
        progress.update(1)

    # lictrt
    configs = [
        ("lictrt fast 1 thread", "fast", 1, 1),
        (f"lictrt fast {threads} threads", "fast", threads, threads),
        ("lictrt compat", "compat", 1, 1),
    ]
    for name, mode, k, th in configs:
        te, data = timed(lambda: coder.encode(tables, sym, idx, mode=mode, substreams=k, threads=th), repeats)
        best["enc"] = timed.best
        td, out = timed(lambda: coder.decode(tables, data, idx, mode=mode, threads=th), repeats)
        best["dec"] = timed.best
        record(name, te, td, len(data), np.array_equal(out, sym), f"{k} substream(s)")
    compat_bytes = coder.encode(tables, sym, idx, mode="compat")

    # CompressAI raw binding, Python lists prebuilt outside the timing
    lists = (sym.tolist(), idx.tolist(), cdf.tolist(), lengths.tolist(), offsets.tolist())
    te, ref = timed(lambda: ans.RansEncoder().encode_with_indexes(*lists), repeats)
    best["enc"] = timed.best
    td, out = timed(lambda: ans.RansDecoder().decode_with_indexes(ref, *lists[1:]), repeats)
    best["dec"] = timed.best
    record("compressai.ans (prebuilt lists)", te, td, len(ref), out == lists[0])

    # CompressAI GaussianConditional API (tensor <-> list conversions included)
    y = torch.from_numpy(sym.astype(np.float32).reshape(1, *SHAPE))
    indexes = gc.build_indexes(torch.from_numpy(sigma.reshape(1, *SHAPE)))
    assert np.array_equal(indexes.numpy().reshape(-1), idx), "build_indexes disagrees with searchsorted"
    te, strings = timed(lambda: gc.compress(y, indexes), repeats)
    best["enc"] = timed.best
    td, y_hat = timed(lambda: gc.decompress(strings, indexes), repeats)
    best["dec"] = timed.best
    record(
        "GaussianConditional.compress/decompress",
        te,
        td,
        len(strings[0]),
        np.array_equal(y_hat.numpy().reshape(-1).astype(np.int32), sym),
    )

    fast1, fastn = rows["lictrt fast 1 thread"], rows[f"lictrt fast {threads} threads"]
    ref_row, gc_row = rows["compressai.ans (prebuilt lists)"], rows["GaussianConditional.compress/decompress"]
    return {
        "symbols": n,
        "regime": regime,
        "rows": rows,
        "compat_bytes_equal_compressai": compat_bytes == ref,
        "ratios": {
            "fast_1t_decode_vs_compressai_ans": fast1["decode_msym_s"] / ref_row["decode_msym_s"],
            "fast_1t_encode_vs_compressai_ans": fast1["encode_msym_s"] / ref_row["encode_msym_s"],
            "fast_1t_decode_vs_gaussian_conditional": fast1["decode_msym_s"] / gc_row["decode_msym_s"],
            "fast_nt_decode_vs_compressai_ans": fastn["decode_msym_s"] / ref_row["decode_msym_s"],
            "fast_size_vs_compat": fast1["bytes"] / rows["lictrt compat"]["bytes"],
        },
    }


def print_regime(res: dict) -> None:
    print(
        f"\nsigma regime '{res['regime']}': {res['symbols']:,} symbols "
        f"(compat bytes == CompressAI: {res['compat_bytes_equal_compressai']})"
    )
    print(f"  {'coder':<42} {'enc Msym/s':>10} {'dec Msym/s':>10} {'bytes':>9} {'bits/sym':>8} exact")
    for name, r in res["rows"].items():
        print(
            f"  {name:<42} {r['encode_msym_s']:>10.1f} {r['decode_msym_s']:>10.1f} {r['bytes']:>9,} "
            f"{r['bits_per_symbol']:>8.3f} {r['exact']}"
        )
    for k, v in res["ratios"].items():
        print(f"  {k:<42} {v:>8.2f}x" if "size" not in k else f"  {k:<42} {v:>8.4f}")


def run(regimes, repeats: int, threads: int, quiet: bool = False) -> dict:
    """Every coder on every regime; prints each regime's table and returns the results document."""
    try:
        import torch
        from compressai.entropy_models import GaussianConditional
        from compressai.models.google import get_scale_table
    except ImportError as exc:
        raise BenchmarkError(f"the coder benchmark compares against CompressAI, which is missing: {exc}")
    from tqdm import tqdm

    from runtime import coder

    torch.set_num_threads(1)
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    tables_np = (gc._quantized_cdf.numpy(), gc._cdf_length.numpy(), gc._offset.numpy())
    results = []
    with tqdm(total=5 * len(regimes), desc="coder benchmark", unit="coder", file=sys.stderr, disable=quiet) as progress:
        for regime in regimes:
            results.append(bench_regime(regime, repeats, threads, tables_np, gc, coder, progress))
    for res in results:
        print_regime(res)
    return {
        "benchmark": "coder",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "compressai": __import__("compressai").__version__,
        },
        "settings": {
            "shape": SHAPE,
            "repeats": repeats,
            "threads": threads,
            "statistic": "median (and best) of repeats",
            "torch_threads": 1,
        },
        "results": results,
    }


class Regime(str, Enum):
    channel = "channel"
    uniform_idx = "uniform_idx"
    all = "all"


def cli(
    json_path: JsonOpt = None,
    threads: Annotated[
        Optional[int], typer.Option(metavar="N", help="threads (and substreams) of the multi-threaded fast run")
    ] = None,
    repeats: RepeatsOpt = 7,
    regime: Annotated[Regime, typer.Option(help="sigma distribution of the latent (see above)")] = Regime.all,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Entropy-coder throughput in M symbols/s: lictrt fast / compat against CompressAI's coder.

    A 320x48x32 Gaussian-conditional latent with CompressAI's scale table; sigma per channel (channel) or
    log-uniform over the whole table (uniform_idx). Every decode is checked exact and compat bytes equal to
    CompressAI's. --threads defaults to every core."""
    threads = threads if threads is not None else os.cpu_count() or 1
    if threads < 1 or repeats < 1:
        raise BenchmarkError("--threads and --repeats must be >= 1")
    doc = run(REGIMES if regime == Regime.all else (regime.value,), repeats, threads, quiet)
    if json_path == "-":
        print(json.dumps(doc, indent=2))
    elif json_path:
        print(f"\nwrote {write_json(json_path, doc)}")
    bad = [
        r["regime"]
        for r in doc["results"]
        if not r["compat_bytes_equal_compressai"] or not all(x["exact"] for x in r["rows"].values())
    ]
    if bad:
        raise BenchmarkError(f"inexact decode or compat mismatch in regime(s): {', '.join(bad)}")


def main(argv: list[str] | None = None) -> int:
    return command_main("coder", argv)


if __name__ == "__main__":
    sys.exit(main())
