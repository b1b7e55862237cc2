"""Checkpoint I/O: the self-describing ``lictrt-checkpoint`` dict of docs/FORMATS.md, and bare state_dicts.

Loading only ever uses ``torch.load(weights_only=True)``: a file that needs arbitrary pickled objects is
refused, never executed. Every failure is a :class:`CheckpointError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from runtime.files import write_atomic
from train.models import ARCHS, create_model, model_config, resolve_config

FORMAT = "lictrt-checkpoint"
FORMAT_VERSION = 1
# CompressAI's coder buffers: sized by ``update()``, empty in a freshly built model.
CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(Exception):
    """A checkpoint cannot be written or read; the message is one line."""


# --------------------------------------------------------------------------------------------------- save


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    lmbda: float | list[float],
    metric: str,
    step: int,
    epoch: int,
    stats: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a lictrt checkpoint at ``path`` (atomically) and return the path.

    Calls ``model.update(force=True)`` first so the CDF buffers are in the state_dict (pass a copy if the
    model is still training). ``train_state`` (optimizer/scheduler states for ``--resume``) is an optional
    extra key, ignored by every other consumer.
    """
    arch = getattr(model, "lictrt_arch", None)
    if arch not in ARCHS:
        raise CheckpointError(f"model has no known lictrt_arch ({arch!r}); build it with train.models.create_model")
    model.update(force=True)
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": model_config(model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "lambda": lmbda,
        "metric": metric,
        "step": int(step),
        "epoch": int(epoch),
        "stats": dict(stats or {}),
        "versions": library_versions(),
    }
    ckpt["digest"] = tensors_digest(ckpt["state_dict"])
    for key in ("config", "stats", "lambda"):
        _check_plain(ckpt[key], key)
    if train_state is not None:
        ckpt["train_state"] = train_state
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: torch.save(ckpt, f))
    return path


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """``sha256:`` + hex digest over a state_dict: name, dtype, shape and bytes of every tensor, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _check_plain(value: Any, where: str) -> None:
    """Only plain containers/scalars go into metadata, so ``weights_only=True`` can read them back."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, where)
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_plain(v, where)
    elif type(value) not in _PLAIN:  # exact types: a str/float subclass pickles as a class
        raise CheckpointError(f"checkpoint field {where} holds a {type(value).__name__}; only plain values allowed")


def library_versions() -> dict[str, str]:
    import compressai

    return {"torch": str(torch.__version__), "compressai": str(compressai.__version__), "lictrt": _lictrt_version()}


def _lictrt_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lictrt")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        m = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        return m.group(1) if m else "unknown"


# --------------------------------------------------------------------------------------------------- load


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with every failure turned into a one-line CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        msg = str(e)
        unsafe = re.search(r"GLOBAL ([\w.]+)", msg)
        if "Weights only load failed" in msg and unsafe:
            raise CheckpointError(
                f"refusing to load {path}: it pickles arbitrary Python objects ({unsafe.group(1)}),"
                " which weights_only=True loading rejects; the file may be malicious"
            ) from None
        if "central directory" in msg or isinstance(e, EOFError):
            raise CheckpointError(f"{path} is truncated or empty (not a complete torch.save file)") from None
        raise CheckpointError(f"{path} is corrupt or not a torch checkpoint ({_first_line(msg, e)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a checkpoint (it holds a {type(obj).__name__}, not a dict)")
    return obj


_BOILERPLATE = (
    "Weights only load failed",
    "In PyTorch 2.6",
    "WeightsUnpickler",
    "(1)",
    "(2)",
    "Check the documentation",
)


def _first_line(msg: str, e: Exception) -> str:
    """The informative line of a torch error message (skipping torch.load's weights_only boilerplate)."""
    for line in msg.splitlines():
        line = line.strip()
        if line and not any(b in line for b in _BOILERPLATE):
            return line[:120]
    return type(e).__name__


def load_checkpoint(
    path: str | os.PathLike,
    arch: str | None = None,
    map_location: Any = "cpu",
    *,
    preset: str | None = None,
    quality: int | None = None,
    **overrides: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model from a lictrt checkpoint, or from a bare state_dict when ``arch`` is given.

    For a bare state_dict (seed repository, CompressAI, or a training dict with a ``state_dict`` key) the
    config comes from ``preset``/``quality``/``overrides`` if given, else it is inferred by matching the
    tensor shapes against every preset of ``arch``. Returns ``(model in eval mode, meta)``; ``meta`` is the
    checkpoint dict without ``state_dict``/``train_state`` plus ``source`` ("lictrt" or "state_dict").
    """
    ckpt = read_checkpoint(path, map_location)
    return model_from_checkpoint(ckpt, arch, preset=preset, quality=quality, source=path, **overrides)


def model_from_checkpoint(
    ckpt: dict[str, Any],
    arch: str | None = None,
    *,
    preset: str | None = None,
    quality: int | None = None,
    source: Any = "checkpoint",
    **overrides: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_checkpoint` on a dict already read by :func:`read_checkpoint` (``source`` names it)."""
    path = source
    if arch is not None and arch not in ARCHS:
        raise CheckpointError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if ckpt.get("format") == FORMAT:
        model, meta = _load_lictrt(path, ckpt, arch)
    else:
        if "format" in ckpt:
            raise CheckpointError(f"{path} has format {ckpt['format']!r}, not {FORMAT!r}")
        if arch is None:
            raise CheckpointError(f"{path} is a bare state_dict; name its architecture (-a ARCH)")
        model, meta = _load_bare(path, ckpt, arch, preset, quality, overrides)
    if not has_cdf_tables(model):
        raise CheckpointError(f"{path}: the model has no CDF tables after loading")
    model.eval()
    return model, meta


def _load_lictrt(path, ckpt, arch):
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported {FORMAT} version {version!r} (this lictrt reads {FORMAT_VERSION})")
    for key in ("arch", "config", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: {FORMAT} without {key!r}")
    if ckpt["arch"] not in ARCHS:
        raise CheckpointError(f"{path}: unknown architecture {ckpt['arch']!r} (known: {', '.join(ARCHS)})")
    if arch is not None and arch != ckpt["arch"]:
        raise CheckpointError(f"{path} holds a {ckpt['arch']!r} model, not {arch!r}")
    if "digest" in ckpt:  # written by save_checkpoint; older lictrt checkpoints have none
        state = ckpt["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: state_dict is not a dict of tensors")
        if tensors_digest(state) != ckpt["digest"]:
            raise CheckpointError(f"{path} is corrupt: its tensors do not match the digest stored with them")
    model = _build(ckpt["arch"], dict(ckpt["config"]))
    _load_state(model, ckpt["state_dict"], ckpt["arch"], path)
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "train_state")}
    meta["source"] = "lictrt"
    meta["path"] = str(path)
    return model, meta


def _load_bare(path, ckpt, arch, preset, quality, overrides):
    state = _unwrap_state_dict(ckpt, path)
    from_seed = getattr(ARCHS[arch].model_class(), "state_dict_from_seed", None)  # seed names -> ours
    if from_seed is not None:
        try:
            state = from_seed(state)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    if preset is not None or quality is not None or overrides:
        try:
            config = resolve_config(arch, preset, quality, **overrides)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    else:
        config = infer_config(arch, state, path)
    model = _build(arch, config)
    updated = _load_state(model, state, arch, path)
    meta = {
        "format": None,
        "arch": arch,
        "config": model_config(model),
        "source": "state_dict",
        "path": str(path),
        "cdf_rebuilt": updated,
    }
    for key in ("epoch", "step", "lambda", "metric"):
        if key in ckpt and isinstance(ckpt[key], _PLAIN):
            meta[key] = ckpt[key]
    return model, meta


def _unwrap_state_dict(ckpt: dict, path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a bare checkpoint (also ``{"state_dict": ...}``, ``{"parameters": ...}`` as the
    GIT-SSIC seed saves, and DDP's ``module.`` prefix)."""
    key = next((k for k in ("state_dict", "parameters") if isinstance(ckpt.get(k), dict)), None)
    state = ckpt[key] if key else ckpt
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path} is not a checkpoint: neither a {FORMAT} dict nor a state_dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _build(arch: str, config: dict[str, Any]) -> nn.Module:
    try:
        return create_model(arch, **config)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"cannot build {arch!r} from the checkpoint config: {e}") from None


def _is_cdf_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in CDF_BUFFERS


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path) -> bool:
    """Strictly load ``state``; CDF buffers may be absent (then rebuilt by ``update``). True if rebuilt."""
    mismatch = describe_mismatch(model, state)
    if mismatch:
        raise CheckpointError(f"{path}: state_dict does not fit {arch!r}: {mismatch}")
    # an empty CDF buffer (a model saved before update()) counts as absent: rebuilt below
    state = {k: v for k, v in state.items() if not (_is_cdf_buffer(k) and v.numel() == 0)}
    expected = set(model.state_dict())
    missing_cdf = [k for k in expected - set(state) if _is_cdf_buffer(k)]
    try:
        if missing_cdf:  # CompressAI's load_state_dict insists on the CDF keys: load the rest, then update()
            nn.Module.load_state_dict(model, state, strict=False)
        else:
            model.load_state_dict(state)  # CompressAI's override resizes the CDF buffers to the saved ones
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: state_dict does not fit {arch!r}: {_first_line(str(e), e)}") from None
    if missing_cdf:
        model.update(force=True)
        return True
    return False


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """'' if ``state`` fits ``model`` (CDF buffers excepted), else a short description of the difference."""
    return _mismatch(model, state)[1]


def _mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[int, str]:
    own = {k: v.shape for k, v in model.state_dict().items() if not _is_cdf_buffer(k)}
    theirs = {k: v.shape for k, v in state.items() if not _is_cdf_buffer(k)}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    wrong = [k for k in own if k in theirs and own[k] != theirs[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
    if wrong and not parts:
        k = wrong[0]
        parts.append(f"{len(wrong)} shape mismatches (e.g. {k!r}: {list(theirs[k])} here, {list(own[k])} expected)")
    return len(missing) + len(unexpected) + len(wrong), "; ".join(parts)


def infer_config(arch: str, state: dict[str, torch.Tensor], path="state_dict") -> dict[str, Any]:
    """The config of the first preset of ``arch`` whose parameter shapes match ``state`` exactly."""
    tried, best = [], None
    for name in ARCHS[arch].presets:
        config = resolve_config(arch, preset=name)
        if config in tried:
            continue
        tried.append(config)
        try:
            with torch.device("meta"):  # shapes only, no memory
                model = create_model(arch, **config)
        except Exception:  # a constructor that cannot run on the meta device: build it for real
            model = create_model(arch, **config)
        score, text = _mismatch(model, state)
        if not score:
            return config
        if best is None or score < best[0]:
            best = (score, name, text)
    raise CheckpointError(
        f"{path}: state_dict does not fit {arch!r} (closest preset {best[1]!r}: {best[2]}); "
        "another architecture, or give --preset/--quality"
    )


def has_cdf_tables(model: nn.Module) -> bool:
    """True if every entropy model of ``model`` has its quantized CDF table (needed to code bitstreams)."""
    coders = [m for m in model.modules() if isinstance(m, (EntropyBottleneck, GaussianConditional))]
    return bool(coders) and all(m._quantized_cdf.numel() > 0 and m._offset.numel() > 0 for m in coders)


def summarize(meta: dict[str, Any], model: nn.Module) -> str:
    """A few human-readable lines about a loaded checkpoint (``python -m train --info``)."""
    stats = meta.get("stats") or {}
    lines = [
        f"arch     {meta.get('arch')}  ({meta.get('source')})",
        f"config   {meta.get('config')}",
        f"params   {sum(p.numel() for p in model.parameters()):,}",
    ]
    if meta.get("source") == "lictrt":
        lines += [
            f"lambda   {meta.get('lambda')}  metric {meta.get('metric')}",
            f"progress step {meta.get('step')}  epoch {meta.get('epoch')}",
            "stats    "
            + "  ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in stats.items()
                if not isinstance(v, dict)
            ),
            f"versions {meta.get('versions')}",
        ]
    return "\n".join(lines)
