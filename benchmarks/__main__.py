"""`python -m benchmarks <command> [...]`: dispatch to `benchmarks.<command>.main(argv)`."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "coder": "entropy-coder throughput: fast / compat / CompressAI, M symbols/s",
    "latency": "per-graph and end-to-end encode/decode latency of a bundle",
    "macs": "MACs per pixel counted from the exported ONNX graphs",
    "rd": "rate-distortion and BD-rate of deployed bundles against the PyTorch reference",
    "wavefront": "spatial-context decode: wavefront vs raster order",
    "kodak-decode": "Kodak decode on CPU: runtime (ORT + our coder) vs CompressAI decompress, same checkpoint",
    "groups": "grouped coding (GIT-SSIC): mask cost and rate of every group with label masks",
    "report": "markdown tables and plots from results JSON",
    "demo": "the main job: train tiny models, export, code images, print the report",
}


def usage() -> str:
    lines = ["usage: python -m benchmarks <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = f"benchmarks.{name.replace('-', '_')}"  # command "kodak-decode" -> benchmarks.kodak_decode
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"error: command {name!r} is not available in this checkout", file=sys.stderr)
            return 2
        raise
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
