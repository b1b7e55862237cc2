"""``python -m benchmarks <command> [...]``: one Typer command per benchmark, run by ``benchmarks.<command>.main``.

Each command keeps its own options (``python -m benchmarks rd --help``); exit status and error lines follow
runtime/cli.py (0 ok, 1 error, 2 usage, 130 interrupted). With no command it prints this help and exits 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from runtime.cli import CONTEXT, run

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
    "groups": "grouped coding (GIT-SSIC): mask cost and rate of every group with label masks",
    "report": "markdown tables and plots from results JSON",
    "demo": "the pipeline end to end on tiny models: train, export, code images, report",
}

EXAMPLES = {
    "coder": "python -m benchmarks coder --json benchmarks/results/coder.json",
    "latency": "python -m benchmarks latency runs/tiny.bundle --size 512x768 --iters 20",
    "macs": "python -m benchmarks macs runs/tiny.bundle --size 512x768",
    "rd": "python -m benchmarks rd --bundle runs/q1.bundle --bundle runs/q3.bundle --data assets/images/kodak "
    "--plot rd.png",
    "wavefront": "python -m benchmarks wavefront runs/mbt2018.bundle",
    "kodak-decode": "python -m benchmarks kodak-decode --images 4 --repeats 3",
    "cpp-runtime": "python -m benchmarks cpp-runtime --images 4 --json benchmarks/results/cpp_runtime.json",
    "basic-levels": "python -m benchmarks basic-levels runs/basic.bundle --images 3 --repeats 2",
    "native-ops": "python -m benchmarks native-ops --arch ssmic mambavc --threads 2",
    "groups": "python -m benchmarks groups runs/gitssic.bundle --images KODAK --masks MASKS --json groups.json",
    "report": "python -m benchmarks report -o benchmarks/results/report.md",
    "demo": "python -m benchmarks demo --fast",
}

app = typer.Typer(
    name="python -m benchmarks",
    help="lictrt benchmarks: latency, MACs, rate-distortion, coder speed, reports and the demo.",
    context_settings=CONTEXT,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
)


def _module(name: str):
    module_name = f"benchmarks.{name.replace('-', '_')}"  # command "kodak-decode" -> benchmarks.kodak_decode
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise RuntimeError(f"command {name!r} is not available in this checkout") from None
        raise


def _register(name: str, text: str) -> None:
    def command(ctx: typer.Context) -> int:
        return int(_module(name).main(list(ctx.args)) or 0)

    command.__doc__ = f"{text}. Options: python -m benchmarks {name} --help"
    app.command(
        name,
        epilog=f"Example:\n\n  {EXAMPLES[name]}",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(command)


for _name, _text in COMMANDS.items():
    _register(_name, _text)


def main(argv: list[str] | None = None) -> int:
    return run(app, argv, prog="python -m benchmarks")


if __name__ == "__main__":
    sys.exit(main())
