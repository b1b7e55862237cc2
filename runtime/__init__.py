"""lictrt runtime: bitstream container, entropy coder, plan interpreter and inference backends.

``from runtime import Codec, BitstreamError``.  Exports are lazy so that ``import runtime.coder`` stays cheap
(no onnxruntime import until a Codec is used); nothing here imports torch.
"""

from __future__ import annotations

__all__ = ["Codec", "CodecError", "BitstreamError", "BundleError"]


def __getattr__(name):
    if name in ("Codec", "CodecError"):
        from . import codec

        return getattr(codec, name)
    if name == "BitstreamError":
        from .errors import BitstreamError

        return BitstreamError
    if name == "BundleError":
        from .bundle import BundleError

        return BundleError
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
