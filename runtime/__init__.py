"""lictrt runtime: bitstream container, entropy coder, plan interpreter and inference backends.

``from runtime import Codec, BitstreamError``.  Exports are lazy so that ``import runtime.coder`` stays cheap
(no onnxruntime import until a Codec is used); nothing here imports torch.
"""

from __future__ import annotations

__all__ = ["Codec", "CodecError", "BitstreamError", "BundleError", "GroupError"]


def __getattr__(name):
    if name in ("Codec", "CodecError"):
        from . import codec

        return getattr(codec, name)
    if name in ("BitstreamError", "GroupError"):
        from . import errors

        return getattr(errors, name)
    if name == "BundleError":
        from .bundle import BundleError

        return BundleError
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
