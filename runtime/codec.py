"""``Codec``: image ⇄ ``.lic`` bitstream for one codec bundle, on a chosen backend.

Determinism policy (docs/FORMATS.md, parse-critical graphs):
  * reconstruction-only graphs (analysis, synthesis) run on the chosen backend (onnxruntime, torch, tensorrt);
  * parse-critical graphs (hyper_synthesis, context/slice nets) run on ONE pinned path, by default
    ``onnxruntime-cpu-fp32`` (see ``backends.ort``), whatever the chosen backend — also for ``backend="torch"``,
    because torch's CPU convolutions and ORT's may differ in the last float bits;
  * ``parse_path="torch"`` (or a bundle-less ``Codec.from_model``) uses the PyTorch reference instead, recorded
    as parse path 1 in the container;
  * ``parse_path="torch-cuda"`` runs them with PyTorch on the GPU in strict fp32 (no TF32, deterministic cuDNN),
    recorded as parse path 2: the fastest GPU decode, exact only for a decoder on the same GPU model and
    software (any other decoder's mismatch is caught by the stream CRCs);
  * with ``parse_path="auto"`` the decoder follows the container's parse path when it can run it (an explicit
    ``parse_path`` is always used as given), else its own default: then the stream
    CRCs and the coder's final-state check tell whether the symbols survived (a mismatch raises
    :class:`BitstreamError` naming the stream; a silent wrong image is impossible).
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import numpy as np

from . import container, plans
from . import image as img
from .backends import BackendError
from .bundle import Bundle, BundleError  # noqa: F401  (re-exported: Codec.open raises it)
from .container import CODER_MODES, FLAG_RASTER_CONTEXT, KNOWN_FLAGS, MAX_PIXELS, PARSE_PATHS, Header
from .errors import BitstreamError, GroupError
from .files import check_distinct, write_atomic
from .levels import LevelError, levels_of
from .plans.context import PlanContext

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")


GROUPED_PLANS = ("grouped_slices",)  # plans whose streams are per group (mask at encode, subset at decode)


def group_bytes(stream_sizes: dict[str, int]) -> dict[int, int]:
    """Bytes per group label from a grouped plan's stream sizes (streams ``g<label>.<name>``)."""
    out: dict[int, int] = {}
    for kind, n in stream_sizes.items():
        head, dot, _ = kind.partition(".")
        if dot and head[:1] == "g" and head[1:].isdigit():
            out[int(head[1:])] = out.get(int(head[1:]), 0) + n
    return dict(sorted(out.items()))


class CodecError(ValueError):
    """Bad codec configuration or input (not a corrupt bitstream: that is BitstreamError)."""


class Codec:
    """Encode/decode images with one bundle.  Build with :meth:`open` or :meth:`from_model`.

    A Codec may be shared by threads: each call builds its own plan context, ORT sessions are thread-safe,
    and ``last_stats`` is per thread.
    """

    def __init__(
        self,
        bundle: Bundle,
        recon,
        parse_backends: dict,
        parse_path: str,
        mode: str = "fast",
        substreams: int = 1,
        width: int | None = None,
        follow_parse_path: bool = True,
        context_order: str | None = None,
        level: str | dict | None = None,
    ):
        if mode not in CODER_MODES:
            raise CodecError(f"unknown coder mode '{mode}' (fast, compat)")
        if parse_path not in parse_backends:
            raise CodecError(f"parse path '{parse_path}' is not available (have {', '.join(parse_backends)})")
        self.bundle, self.recon, self.parse_backends = bundle, recon, parse_backends
        self.parse_path, self.mode, self.substreams = parse_path, mode, int(substreams)
        self.follow_parse_path = follow_parse_path
        if context_order not in (None, "wavefront", "raster"):
            raise CodecError(f"unknown context order '{context_order}' (wavefront, raster)")
        self._context_order = context_order
        if self.substreams < 1:
            raise CodecError(f"substreams must be >= 1, got {substreams}")
        prefixes = bundle.prefixes
        if width is None:
            self.width_index = 0
        else:
            widths = list(bundle.plan.get("widths") or [])
            if width not in widths:
                raise CodecError(f"width {width} not in the bundle's widths {widths}")
            self.width_index = widths.index(width)
        self.prefix = prefixes[self.width_index]
        self.levels = levels_of(bundle.plan)
        if self.levels is None and level is not None:
            raise CodecError(f"this bundle ({bundle.plan_kind}) has one operating point: --level does not apply")
        try:
            self.level = None if self.levels is None else self.levels.parse(level)
        except LevelError as e:
            raise CodecError(str(e)) from None
        self.plan = plans.get(bundle.plan_kind)
        self._local = threading.local()

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        bundle,
        backend: str = "auto",
        device: str | None = None,
        mode: str = "fast",
        threads: int | None = None,
        *,
        checkpoint=None,
        model=None,
        parse_path: str = "auto",
        substreams: int = 1,
        width: int | None = None,
        context_order: str | None = None,
        level: str | dict | None = None,
    ) -> "Codec":
        """Open a bundle directory (or a :class:`Bundle`) on ``backend``.

        ``backend="torch"`` needs ``checkpoint`` (path) or ``model``: the bundle holds no torch weights.
        ``parse_path``: "auto" (= "onnxruntime"), "onnxruntime", "torch" or "torch-cuda" (the last two need a
        torch model; "torch-cuda" a CUDA device).
        ``context_order`` (spatial_context): "wavefront" (default) or "raster"; recorded in the header flags.
        ``level`` (scalable bundles, plan ``grouped_context``): the level to encode at, a preset name
        ("fastest", "full") or ``"g_a=48,g_s=96,context=4stage"`` (runtime/levels.py); written into the header.
        """
        b = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        if backend not in BACKENDS:
            raise CodecError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
        from .backends.ort import OrtBackend

        parse = {"onnxruntime-cpu-fp32": OrtBackend(b, pinned=True)}
        torch_model = model
        if backend == "auto":
            backend = "tensorrt" if _trt_ready(b) else "onnxruntime"
        if backend == "onnxruntime":
            recon = OrtBackend(b, device=device, threads=threads)
        elif backend == "tensorrt":
            from .backends.tensorrt import TensorRTBackend

            recon = TensorRTBackend(b, device=device)
        else:  # torch
            from .backends import torch_ref

            if torch_model is None:
                if checkpoint is None:
                    raise CodecError(
                        "backend 'torch' needs checkpoint=... (or model=...): bundles carry no torch weights"
                    )
                torch_model = torch_ref.load_checkpoint(checkpoint)
            if b.path is not None:  # an exported bundle: the weights must be the ones it was exported from
                torch_ref.check_matches(torch_model, b, f"checkpoint {checkpoint}" if checkpoint else "the model")
            recon = torch_ref.TorchBackend(torch_model, kind=b.plan_kind, device=device, threads=threads)
        pp = _parse_path_name(parse_path, default="onnxruntime-cpu-fp32")
        if torch_model is not None:
            parse.update(_torch_parse_backends(torch_model, b.plan_kind, recon, pp))
        elif pp != "onnxruntime-cpu-fp32":
            raise CodecError(f"parse path '{parse_path}' needs backend 'torch' (a checkpoint or model)")
        return cls(
            b,
            recon,
            parse,
            pp,
            mode,
            substreams,
            width,
            follow_parse_path=parse_path == "auto",
            context_order=context_order,
            level=level,
        )

    @classmethod
    def from_model(
        cls,
        model,
        mode: str = "fast",
        device: str | None = None,
        threads: int | None = None,
        substreams: int = 1,
        parse_path: str = "torch",
        context_order: str | None = None,
    ) -> "Codec":
        """A torch-only codec from an updated model (``update(force=True)``): no bundle files; parse path "torch"
        (CPU) or "torch-cuda".

        Its model hash covers the weights and tables, so its bitstreams decode only with a codec of the same
        model built the same way.
        """
        from .backends import torch_ref

        pp = _parse_path_name(parse_path, default="torch-cpu-fp32")
        if not pp.startswith("torch-"):
            raise CodecError(f"a codec built from a model has no '{parse_path}' parse path (torch, torch-cuda)")
        b = torch_ref.bundle_from_model(model)
        recon = torch_ref.TorchBackend(model, kind=b.plan_kind, device=device, threads=threads)
        parse = _torch_parse_backends(model, b.plan_kind, recon, pp)
        return cls(b, recon, parse, pp, mode, substreams, context_order=context_order)

    @property
    def context_order(self) -> str:
        """spatial_context coding order for encoding: the one given to the Codec, else the bundle plan's."""
        return self._context_order or self.bundle.plan.get("context", {}).get("order", "wavefront")

    # ---- stats --------------------------------------------------------------------------------------------
    @property
    def last_stats(self) -> dict:
        """Stats of this thread's last encode/decode: timings (network vs entropy), steps, sizes, bpp."""
        return getattr(self._local, "stats", {})

    @property
    def last_symbols(self) -> dict[str, np.ndarray]:
        """Symbols of this thread's last encode/decode called with ``keep_symbols=True``: stream kind -> int32
        array in coding order (a spatial-context plan's: its context order). Empty after any other call."""
        return getattr(self._local, "symbols", {})

    # ---- encode -------------------------------------------------------------------------------------------
    def encode(self, image, mask=None, progress=None, keep_symbols: bool = False) -> bytes:
        """Encode an H×W×3 uint8 array or an image path into ``.lic`` bytes.

        ``mask`` (plans with groups, GIT-SSIC): integer labels (an array or a label PNG path) at the image's
        full, 1/16 or 1/32 size; each 32-pixel cell gets one group. Without it the image is one group, 0.
        ``progress(done, total)``: called after each of the plan's graph calls (runtime/plans/context.py), e.g.
        each wavefront step of a spatial-context plan; ``done`` reaches ``total`` at the end.
        ``keep_symbols``: keep every stream's symbols for :attr:`last_symbols`."""
        t0 = time.perf_counter()
        im = img.load(image)
        h, w = im.shape[:2]
        if h * w > MAX_PIXELS:
            raise CodecError(f"image {h}×{w} is too large (limit {MAX_PIXELS} pixels)")
        x = img.to_input(im, self.bundle.pad_multiple)
        ctx = self._context(self.parse_path, progress=progress, keep_symbols=keep_symbols)
        if mask is not None:
            if self.bundle.plan_kind not in GROUPED_PLANS:
                raise CodecError(f"plan '{self.bundle.plan_kind}' codes no groups: it takes no mask")
            ctx.mask = img.load_labels(mask)
        ctx.image_hw = (h, w)
        order = self.context_order
        if order not in ("wavefront", "raster"):
            raise CodecError(f"unknown context order '{order}' in the bundle plan (wavefront, raster)")
        ctx.context_order = order
        ctx.level = self.level
        try:
            self.plan.encode(ctx, x)
        except ValueError as e:
            raise CodecError(f"cannot encode: {e}") from None
        header = self._header(h, w, flags=FLAG_RASTER_CONTEXT if order == "raster" else 0)
        data = container.pack(header, ctx.out_streams)
        self._finish(ctx, t0, h, w, data, self.parse_path)
        if self.level is not None:
            self._local.stats["level"] = self.levels.format(self.level)
        return data

    def encode_file(self, src, dst, mask=None, progress=None) -> dict:
        """Encode image file ``src`` to ``dst`` (written atomically); returns the stats."""
        check_distinct(dst, src)
        data = self.encode(src, mask=mask, progress=progress)
        write_atomic(dst, data, inputs=(src,) if mask is None or isinstance(mask, np.ndarray) else (src, mask))
        return self.last_stats

    # ---- decode -------------------------------------------------------------------------------------------
    def decode(self, data: bytes, groups=None, progress=None, keep_symbols: bool = False) -> np.ndarray:
        """Decode ``.lic`` bytes into an H×W×3 uint8 array; BitstreamError when the stream does not check out.

        ``groups`` (plans with groups): decode only these group labels (their streams alone are read; the
        latent is zero elsewhere); GroupError if one is not in the bitstream. Default: every group.
        ``progress(done, total)``, ``keep_symbols``: as for :meth:`encode`."""
        t0 = time.perf_counter()
        if groups is not None:
            if self.bundle.plan_kind not in GROUPED_PLANS:
                raise GroupError(f"plan '{self.bundle.plan_kind}' codes no groups: cannot decode a subset")
            try:
                groups = sorted({int(g) for g in groups})
            except (TypeError, ValueError):
                raise GroupError(f"groups must be integers, got {groups!r}") from None
            if not groups:
                raise GroupError("no groups to decode")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CodecError(f"expected bitstream bytes, got {type(data).__name__}")
        header, streams = container.unpack(data)
        if bytes(header.model_hash) != self.bundle.model_hash:
            raise BitstreamError(
                f"model hash {bytes(header.model_hash).hex()[:16]}… does not match the bundle "
                f"({self.bundle.model_hash.hex()[:16]}…): encoded with another model"
            )
        if header.plan_kind_name != self.bundle.plan_kind:
            raise BitstreamError(
                f"bitstream plan kind {header.plan_kind} is not the bundle's '{self.bundle.plan_kind}'"
            )
        if header.pad_multiple != self.bundle.pad_multiple:
            raise BitstreamError(f"bitstream pad multiple {header.pad_multiple} != bundle's {self.bundle.pad_multiple}")
        if header.flags & ~KNOWN_FLAGS:
            raise BitstreamError(f"unknown header flags {header.flags:#06x}")
        level = None
        if self.levels is not None:
            if not header.level:
                raise BitstreamError("the header carries no level, which this scalable bundle needs")
            level = self.levels.from_bytes(header.level)
        elif header.level:
            raise BitstreamError("the header carries a level, but this bundle has one operating point")
        if header.coder_mode >= len(CODER_MODES):
            raise BitstreamError(f"unknown coder mode {header.coder_mode}")
        if header.width_index >= len(self.bundle.prefixes):
            raise BitstreamError(
                f"width index {header.width_index} outside the bundle's {len(self.bundle.prefixes)} widths"
            )
        h, w = header.height, header.width
        if h < 1 or w < 1 or h * w > MAX_PIXELS:
            raise BitstreamError(f"bad image size {h}×{w} in header")
        wanted = header.parse_path_name if header.parse_path < len(PARSE_PATHS) else None
        pp = wanted if self.follow_parse_path and wanted in self.parse_backends else self.parse_path
        top, bottom, left, right = img.padding(h, w, self.bundle.pad_multiple)
        ctx = self._context(
            pp,
            header.coder_mode_name,
            self.bundle.prefixes[header.width_index],
            {s.kind: s for s in streams},
            progress=progress,
            keep_symbols=keep_symbols,
        )
        ctx.context_order = "raster" if header.flags & FLAG_RASTER_CONTEXT else "wavefront"
        ctx.level = level
        ctx.groups = groups
        x_hat = self.plan.decode(ctx, (h + top + bottom, w + left + right))
        out = img.from_output(np.asarray(x_hat), h, w, self.bundle.pad_multiple)
        self._finish(ctx, t0, h, w, data, pp, wanted)
        if level is not None:
            self._local.stats["level"] = self.levels.format(level)
        return out

    def decode_file(self, src, dst, groups=None, progress=None) -> dict:
        """Decode ``.lic`` file ``src`` into image file ``dst`` (atomic); returns the stats."""
        check_distinct(dst, src)
        try:
            data = Path(src).read_bytes()
        except OSError as e:
            raise CodecError(f"cannot read {src}: {e.strerror or e}") from None
        img.save(dst, self.decode(data, groups=groups, progress=progress), inputs=(src,))
        return self.last_stats

    # ---- internals ----------------------------------------------------------------------------------------
    def _context(
        self, parse_path, mode=None, prefix=None, streams=None, progress=None, keep_symbols=False
    ) -> PlanContext:
        return PlanContext(
            self.bundle,
            self.recon,
            self.parse_backends[parse_path],
            mode or self.mode,
            self.substreams,
            self.prefix if prefix is None else prefix,
            streams,
            progress,
            keep_symbols,
        )

    def _header(self, h, w, flags: int = 0) -> Header:
        header = Header.create(
            model_hash=self.bundle.model_hash,
            height=h,
            width=w,
            plan=self.bundle.plan_kind,
            coder_mode=self.mode,
            parse_path=self.parse_path,
            pad_multiple=self.bundle.pad_multiple,
            width_index=self.width_index,
            flags=flags,
        )
        if self.level is not None:
            header.level = self.levels.to_bytes(self.level)
        return header

    def _finish(self, ctx, t0, h, w, data, parse_path, wanted=None):
        s = ctx.stats.as_dict()
        streams = ctx.out_streams or list(ctx.in_streams.values())
        payload = sum(len(x.payload) for x in streams)
        s.update(
            total_s=time.perf_counter() - t0,
            bytes=len(data),
            payload_bytes=payload,
            header_bytes=len(data) - payload,
            bpp=8.0 * len(data) / (h * w),
            payload_bpp=8.0 * payload / (h * w),
            streams={x.kind: len(x.payload) for x in streams},
            parse_path=parse_path,
            backend=getattr(self.recon, "name", "?"),
            size=(h, w),
        )
        if wanted is not None and wanted != parse_path:
            s["parse_path_recorded"] = wanted
        if self.bundle.plan_kind in GROUPED_PLANS:
            s["group_bytes"] = group_bytes(s["streams"])
            if getattr(ctx, "groups_decoded", None) is not None:
                s["groups_decoded"] = list(ctx.groups_decoded)
        self._local.stats = s
        self._local.symbols = {k: np.concatenate(v) for k, v in (ctx.symbols or {}).items()}


def _parse_path_name(name: str, default: str) -> str:
    aliases = {
        "auto": default,
        "onnxruntime": "onnxruntime-cpu-fp32",
        "ort": "onnxruntime-cpu-fp32",
        "torch": "torch-cpu-fp32",
        "torch-cuda": "torch-cuda-fp32",
    }
    pp = aliases.get(name, name)
    if pp not in PARSE_PATHS:
        raise CodecError(f"unknown parse path '{name}' (auto, onnxruntime, torch, torch-cuda)")
    return pp


def _torch_parse_backends(model, kind, recon, parse_path: str) -> dict:
    """The torch parse paths a codec with a torch model offers: always the CPU one (to decode files recorded
    with it), and the GPU one when ``parse_path`` asks for it."""
    out = {"torch-cpu-fp32": _torch_parse_backend(model, kind, recon, "cpu")}
    if parse_path == "torch-cuda-fp32":
        out[parse_path] = _torch_parse_backend(model, kind, recon, "cuda")
    return out


def _torch_parse_backend(model, kind, recon, device: str):
    """A torch parse path on ``device`` ("cpu" or "cuda") in strict fp32: on the recon backend's own weights when
    that runs there (the recon graphs keep the faster defaults), else on a copy of the model on that device."""
    from .backends import torch_ref

    if device == "cuda" and not torch_ref.cuda_available():
        raise CodecError("parse path 'torch-cuda' needs a CUDA device, and torch sees none")
    if isinstance(recon, torch_ref.TorchBackend) and recon.device.type == device:
        return torch_ref.TorchBackend(recon.model, kind=kind, device=str(recon.device), strict_fp32=True)
    return torch_ref.TorchBackend(copy.deepcopy(model).to(device), kind=kind, device=device, strict_fp32=True)


def _trt_ready(bundle) -> bool:
    try:
        from .backends.tensorrt import TensorRTBackend

        return TensorRTBackend.available(bundle)
    except (ImportError, BackendError):
        return False
