"""Writing a codec bundle's files (docs/FORMATS.md). The schema itself is ``runtime.bundle``'s; the coder tables
and the model hash come from ``train.coding``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runtime.bundle import MANIFEST
from runtime.files import write_atomic


def write_tables(path: Path, tables: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **tables))


def write_manifest(bundle: Path, manifest: dict) -> None:
    write_atomic(Path(bundle) / MANIFEST, json.dumps(manifest, indent=2) + "\n")
