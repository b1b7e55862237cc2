"""``python -m benchmarks <command> [...]``: one Typer command per benchmark, ``benchmarks.<module>.cli``.

Each command declares its own options (``python -m benchmarks rd --help``), the shared ones typed once in
benchmarks/common.py and runtime/cli.py; exit status and error lines follow runtime/cli.py (0 ok, 1 error,
2 usage, 130 interrupted). With no command it prints this help and exits 2.
"""

from __future__ import annotations

import importlib
import sys

from runtime.cli import new_app, run

COMMANDS = {
    "coder": "entropy-coder throughput: fast / compat / CompressAI, M symbols/s",
    "latency": "per-graph and end-to-end encode/decode latency of a bundle",
    "macs": "MACs per pixel counted from the exported ONNX graphs",
    "rd": "rate-distortion and BD-rate of deployed bundles against the PyTorch reference",
    "wavefront": "spatial-context decode: wavefront vs raster order",
    "kodak-decode": "Kodak decode on CPU: runtime (ORT + our coder) vs CompressAI decompress, same checkpoint",
    "cpp-runtime": "C++ runtime vs Python runtime: encode/decode time on CPU, spatial-context loop per step",
    "basic-levels": "BaSIC on Kodak: decode time, bpp and decoder MACs per (width, context coder) level",
    "native-ops": "native CPU kernels: scan throughput, SSMIC/MambaVC paper export + parity + Kodak coding on ORT",
    "agreement": "torch vs ONNX Runtime encoders: symbols that differ per stream; each decodes the other's file",
    "groups": "grouped coding (GIT-SSIC): mask cost and rate of every group with label masks",
    "report": "markdown tables and plots from results JSON",
    "demo": "the pipeline end to end on tiny models: train, export, code images, report",
}

EXAMPLES = {
    "coder": (
        "python -m benchmarks coder --json benchmarks/results/coder.json",
        "python -m benchmarks coder --regime channel --repeats 3 --threads 2 -q",
    ),
    "latency": (
        "python -m benchmarks latency runs/tiny.bundle --size 512x768 --iters 20",
        "python -m benchmarks latency runs/tiny.bundle --backend tensorrt --precision fp16 --trtexec --json -",
    ),
    "macs": (
        "python -m benchmarks macs runs/tiny.bundle --size 512x768",
        "python -m benchmarks macs ssmic.pth --json -",
    ),
    "rd": (
        "python -m benchmarks rd --bundle runs/q1.bundle --bundle runs/q3.bundle --data assets/images/kodak "
        "--plot rd.png",
        "python -m benchmarks rd --bundle ssmic.bundle --reference ssmic.pth --data KODAK --anchors jpeg,webp "
        "--json rd.json",
    ),
    "wavefront": (
        "python -m benchmarks wavefront runs/mbt2018.bundle",
        "python -m benchmarks wavefront ssmic.pth --size 256x384 --json wavefront.json",
    ),
    "kodak-decode": (
        "python -m benchmarks kodak-decode --images 4 --repeats 3",
        "python -m benchmarks kodak-decode --checkpoint bmshj2018.pth --mode compat --json -",
    ),
    "cpp-runtime": (
        "python -m benchmarks cpp-runtime --images 4 --json benchmarks/results/cpp_runtime.json",
        "python -m benchmarks cpp-runtime --images 1 --spatial-images 0 --repeats 1 --rounds 1",
    ),
    "basic-levels": (
        "python -m benchmarks basic-levels runs/basic.bundle --images 3 --repeats 2",
        "python -m benchmarks basic-levels runs/basic.bundle --widths 48,96 --coders 4stage --json -",
    ),
    "native-ops": (
        "python -m benchmarks native-ops --arch ssmic --arch mambavc --threads 2",
        "python -m benchmarks native-ops --arch ssmic --no-codec --work runs/native",
    ),
    "agreement": (
        "python -m benchmarks agreement runs/ssmic.pth --bundle runs/ssmic.bundle --images 4",
        "python -m benchmarks agreement runs/mbt2018.pth --control --json agreement.json",
    ),
    "groups": (
        "python -m benchmarks groups runs/gitssic.bundle --images KODAK --masks MASKS --json groups.json",
        "python -m benchmarks groups runs/gitssic.bundle --images KODAK --masks MASKS --limit 2 --backend tensorrt",
    ),
    "report": (
        "python -m benchmarks report -o benchmarks/results/report.md",
        "python -m benchmarks report --results runs/demo/results",
    ),
    "demo": ("python -m benchmarks demo --fast", "python -m benchmarks demo --archs bmshj2018-factorized --seconds 30"),
}

app = new_app(
    "python -m benchmarks",
    "lictrt benchmarks: latency, MACs, rate-distortion, coder speed, reports and the demo.",
    no_args_is_help=True,
)


def _register(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name.replace('-', '_')}")  # "kodak-decode" -> kodak_decode
    app.command(
        name,
        short_help=COMMANDS[name],
        epilog="Examples:\n\n\b\n" + "\n".join(f"  {e}" for e in EXAMPLES[name]),  # \b: no rewrapping
    )(module.cli)


for _name in COMMANDS:
    _register(_name)


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m benchmarks")


if __name__ == "__main__":
    sys.exit(main())
