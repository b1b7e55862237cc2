"""Writing a codec bundle's files (docs/FORMATS.md). The schema itself is ``runtime.bundle``'s; the coder tables
and the model hash come from ``train.coding``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from runtime.bundle import MANIFEST


def write_tables(path: Path, tables: dict[str, np.ndarray]) -> None:
    np.savez(path, **tables)


def write_manifest(bundle: Path, manifest: dict) -> None:
    tmp = bundle / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, bundle / MANIFEST)
