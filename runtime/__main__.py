"""``python -m runtime``: encode / decode images with a codec bundle, inspect ``.lic`` files.

  python -m runtime encode BUNDLE IN.png -o OUT.lic [--backend B] [--mode fast|compat] [--mask LABELS.png]
  python -m runtime decode BUNDLE IN.lic -o OUT.png [--backend B] [--groups 1,3]
  python -m runtime info IN.lic

Exit status 0 on success; otherwise one line on stderr (a traceback only with --verbose) and 1 (bad input,
corrupt bitstream) or 2 (usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m runtime", description="lictrt codec runtime")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, backend=True):
        if backend:
            p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch", "tensorrt"])
            p.add_argument("--device", help="cpu (default), cuda, cuda:N")
            p.add_argument("--threads", type=int, help="intra-op threads of the reconstruction backend")
            p.add_argument("--checkpoint", help="checkpoint for --backend torch (bundles carry no torch weights)")
            p.add_argument("--parse-path", default="auto", choices=["auto", "onnxruntime", "torch"],
                           help="where parse-critical graphs run (default: pinned ONNX Runtime CPU fp32)")
        p.add_argument("--verbose", action="store_true", help="tracebacks on error")

    e = sub.add_parser("encode", help="image -> .lic")
    e.add_argument("bundle")
    e.add_argument("input")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--mode", default="fast", choices=["fast", "compat"])
    e.add_argument("--substreams", type=int, default=1, help="fast mode: independent substreams per stream")
    e.add_argument("--width", type=int, help="slimmable bundles: the width to code with")
    e.add_argument("--context-order", choices=["wavefront", "raster"],
                   help="spatial_context plans: coding order (default: the bundle's, wavefront)")
    e.add_argument("--mask", help="grouped plans (GIT-SSIC): label PNG of the groups (image, 1/16 or 1/32 size); "
                                  "default: the whole image is group 0")
    common(e)
    d = sub.add_parser("decode", help=".lic -> image")
    d.add_argument("bundle")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--groups", type=_int_list, help="grouped plans: decode only these group labels, e.g. 1,3")
    common(d)
    i = sub.add_parser("info", help="print a .lic header and streams")
    i.add_argument("input")
    common(i, backend=False)
    return ap


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of group labels: {text!r}") from None


def _open(a, **kw):
    from .codec import Codec

    return Codec.open(a.bundle, backend=a.backend, device=a.device, threads=a.threads, checkpoint=a.checkpoint,
                      parse_path=a.parse_path, **kw)


def info(path) -> str:
    from . import container

    data = Path(path).read_bytes()
    h, streams = container.unpack(data)
    payload = sum(len(s.payload) for s in streams)
    px = h.height * h.width
    lines = [f"{path}: lictrt container {h.major}.{h.minor}, {len(data)} bytes, image {h.width}x{h.height} "
             f"(pad {h.pad_multiple}), {8 * len(data) / px:.4f} bpp ({8 * payload / px:.4f} bpp payload)",
             f"  model {bytes(h.model_hash).hex()}",
             f"  plan {h.plan_kind_name}, width index {h.width_index}, coder {h.coder_mode_name}, "
             f"parse path {h.parse_path_name}, flags {h.flags:#06x}",
             f"  {'stream':<16}{'symbols':>10}{'bytes':>10}{'bits/sym':>10}  symbols crc"]
    for s in streams:
        bps = 8 * len(s.payload) / s.n_symbols if s.n_symbols else 0.0
        lines.append(f"  {s.kind:<16}{s.n_symbols:>10}{len(s.payload):>10}{bps:>10.3f}  {s.symbols_crc:08x}")
    from .codec import group_bytes

    groups = group_bytes({s.kind: len(s.payload) for s in streams})
    if groups:
        shared = {s.kind: len(s.payload) for s in streams if s.kind in ("mask", "z")}
        lines.append(f"  {len(groups)} groups (bytes; shared: "
                     + ", ".join(f"{k} {v}" for k, v in shared.items()) + ")")
        lines += [f"  group {g:<10}{n:>10}" for g, n in groups.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "encode":
            st = _open(a, mode=a.mode, substreams=a.substreams, width=a.width,
                       context_order=a.context_order).encode_file(a.input, a.output, mask=a.mask)
            print(f"{a.output}: {st['bytes']} bytes, {st['bpp']:.4f} bpp, {1e3 * st['total_s']:.1f} ms "
                  f"(network {1e3 * st['network_s']:.1f} ms, entropy {1e3 * st['entropy_s']:.1f} ms)")
        elif a.cmd == "decode":
            st = _open(a).decode_file(a.input, a.output, groups=a.groups)
            print(f"{a.output}: {st['size'][1]}x{st['size'][0]}, {1e3 * st['total_s']:.1f} ms "
                  f"(network {1e3 * st['network_s']:.1f} ms, entropy {1e3 * st['entropy_s']:.1f} ms)")
        else:
            print(info(a.input))
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user; --verbose for the traceback
        if a.verbose:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.strerror or msg}: {e.filename}"
        print(f"error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
