"""The codec bundle schema, loading and validation (``manifest.json`` + ONNX graphs + ``tables.npz``;
docs/FORMATS.md).

This module is the one owner of the bundle format: its name and version, the file names, the graphs each plan
kind needs, which graphs are parse-critical, and every check a manifest must pass.  The exporter writes bundles
against it; the runtime reads them through it.  The parts the C++ bundle reader shares (format name and version,
file names, the graphs each plan needs) are defined in ``runtime/cpp/include/lictrt/bundle_schema.hpp`` and read
from the extension.  No torch here.  A :class:`Bundle` can also be built in memory (``Bundle.from_parts``): the
torch reference backend does that for ``Codec.from_model``, so the plans only ever see this one object.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _lictrt

FORMAT: str = _lictrt.BUNDLE_FORMAT
FORMAT_VERSION: int = int(_lictrt.BUNDLE_FORMAT_VERSION)
MANIFEST: str = _lictrt.MANIFEST_FILE
TABLES: str = _lictrt.TABLES_FILE

#: the graphs each plan kind needs (per width prefix), from runtime/cpp/include/lictrt/bundle_schema.hpp. A
#: channel_slices bundle also has one ``slice<i>`` and ``lrp<i>`` pair per slice, counted from the manifest; a
#: grouped_context bundle one graph per level-axis value (:func:`level_graphs`).
PLAN_GRAPHS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _lictrt.PLAN_GRAPHS.items()}
#: grouped_context (BaSIC): the transform level axes and the base name of their ``w<W>.<base>`` graphs (g_a: analysis,
#: h_a: hyper_analysis, h_s: hyper_synthesis, g_s: synthesis), from runtime/cpp/include/lictrt/bundle_schema.hpp
LEVEL_GRAPHS: dict[str, str] = dict(_lictrt.LEVEL_GRAPHS)


def level_graph(module: str, width) -> str:
    """The graph of transform ``module`` (g_a, h_a, h_s, g_s) at ``width`` in a grouped_context bundle."""
    return f"w{width}.{LEVEL_GRAPHS[module]}"


def level_graphs(plan: dict) -> list[str]:
    """Every graph a grouped_context plan needs: one per (transform, width) and one per context coder."""
    from .levels import levels_of

    levels = levels_of(plan)
    if levels is None:
        raise BundleError("plan 'grouped_context' needs 'levels'")
    axes = dict(levels.axes)
    missing = [m for m in (*LEVEL_GRAPHS, "context") if m not in axes]
    if missing:
        raise BundleError(f"plan 'grouped_context' levels lack the axes {missing}")
    out = [level_graph(m, w) for m in LEVEL_GRAPHS for w in axes[m]]
    coders = plan.get("coders", {})
    for name in axes["context"]:
        c = coders.get(name)
        if not isinstance(c, dict) or c.get("kind") not in ("scanline", "staged") or "graph" not in c:
            raise BundleError(f"plan 'grouped_context' coder '{name}' needs kind (scanline, staged) and graph")
        if c["kind"] == "staged":
            a = np.asarray(c.get("stage_table", []))
            if a.ndim != 3 or a.shape[1:] != (2, 2) or a.size == 0 or a.min() < 0:
                raise BundleError(f"plan 'grouped_context' coder '{name}': stage_table must be [G][2][2] of stages")
        out.append(c["graph"])
    return out


class BundleError(ValueError):
    """A codec bundle is missing, malformed or inconsistent."""


def graph_role(name: str) -> tuple[str, bool]:
    """``(role, parse_critical)`` of a graph by its name (a ``w<W>.`` width prefix is ignored).

    ``analysis`` (and ``hyper_analysis``, BaSIC's separate h_a) run only in the encoder and ``synthesis`` only in
    the decoder; all are reconstruction-only.
    Every other graph computes entropy parameters on both sides, so it is parse-critical.
    """
    base = name.rsplit(".", 1)[-1]
    if base in ("analysis", "hyper_analysis"):
        return "encoder", False
    if base == "synthesis":
        return "decoder", False
    return "both", True


def read_manifest(path) -> dict:
    """The manifest of the bundle directory ``path``, with its format name and version checked."""
    p = Path(path) / MANIFEST
    if not Path(path).is_dir():
        raise BundleError(f"no bundle directory at {path}")
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is not a codec bundle (no {MANIFEST})") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{p} is not valid JSON: {e}") from None
    check_format(m)
    return m


def file_digest(path) -> str:
    """``sha256:<hex>`` of a file's bytes (the digests of the manifest's ``files``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def referenced_files(m: dict) -> list[str]:
    """Every file a manifest names, relative to the bundle: the tables, each graph's file, each engine's file."""
    out = [TABLES]
    for g in (m.get("graphs") or {}).values():
        if isinstance(g, dict) and g.get("file"):
            out.append(g["file"])
    for e in (m.get("engines") or {}).values():
        if isinstance(e, dict) and e.get("file"):
            out.append(e["file"])
    return out


def safe_member(bundle: Path, name) -> Path:
    """``bundle / name`` for a manifest path, refused (BundleError) unless it is a plain relative path that
    stays inside the bundle, also after following links."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise BundleError(f"manifest path {name!r} is not a relative file name")
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("~"):
        raise BundleError(f"manifest path {name!r} points outside the bundle (absolute or '..' paths are refused)")
    full = bundle / p
    root = bundle.resolve()
    if not full.resolve().is_relative_to(root):
        raise BundleError(f"manifest path {name!r} leads outside the bundle through a link")
    return full


def verify_files(bundle: Path, m: dict) -> None:
    """Check a bundle directory against its manifest: paths inside the bundle; with ``files`` digests, every
    referenced file listed and each listed file's bytes matching (a BundleError names the bad file)."""
    bundle = Path(bundle)
    names = referenced_files(m)
    for name in names:
        safe_member(bundle, name)
    files = m.get("files")
    if files is None:  # a manifest written by hand, without digests: paths checked only
        return
    if not isinstance(files, dict):
        raise BundleError("manifest 'files' must map file names to sha256 digests")
    missing = [n for n in names if n not in files]
    if missing:
        raise BundleError(f"manifest has no digest for {missing[0]} (the bundle was changed after export)")
    for name, want in files.items():
        full = safe_member(bundle, name)
        if not full.is_file():
            raise BundleError(f"bundle file {name} is missing from {bundle}")
        if file_digest(full) != want:
            raise BundleError(
                f"bundle file {name} does not match its digest in the manifest (edited, damaged, or "
                "left from another export): re-export the bundle"
            )


def check_format(m) -> None:
    """Raise :class:`BundleError` unless ``m`` is a manifest of this format and version."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"manifest format is {m.get('format') if isinstance(m, dict) else m!r}, expected '{FORMAT}'")
    if m.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"unsupported bundle format_version {m.get('format_version')} (this runtime reads {FORMAT_VERSION})"
        )


@dataclass(frozen=True)
class EntropyTables:
    """The integer coder tables of one entropy model (one ``<prefix>.*`` group of tables.npz)."""

    name: str
    cdf: np.ndarray  # int32 [T, Lmax]
    cdf_length: np.ndarray  # int32 [T]
    offset: np.ndarray  # int32 [T]
    medians: np.ndarray | None = None  # float32 [C], EntropyBottleneck
    scale_table: np.ndarray | None = None  # float32 [T], GaussianConditional
    scale_bound: np.float32 | None = None
    _coder: list = field(default_factory=list, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return "gaussian" if self.scale_table is not None else "factorized"

    def coder_tables(self):
        """The ``runtime.coder.CoderTables`` for these tables, built once."""
        if not self._coder:
            from . import coder

            self._coder.append(coder.CoderTables(self.cdf, self.cdf_length, self.offset))
        return self._coder[0]

    def validate(self) -> None:
        t = self.cdf.shape[0] if self.cdf.ndim == 2 else -1
        if t < 1 or self.cdf_length.shape != (t,) or self.offset.shape != (t,):
            raise BundleError(
                f"tables '{self.name}': cdf {self.cdf.shape}, cdf_length {self.cdf_length.shape}, "
                f"offset {self.offset.shape} do not agree"
            )
        if int(self.cdf_length.min()) < 2 or int(self.cdf_length.max()) > self.cdf.shape[1]:
            raise BundleError(f"tables '{self.name}': cdf_length outside [2, {self.cdf.shape[1]}]")
        if self.scale_table is not None:
            if self.scale_table.shape != (t,) or not np.all(np.diff(self.scale_table) > 0):
                raise BundleError(f"tables '{self.name}': scale_table must be increasing with {t} entries")
            if self.scale_bound is None:
                raise BundleError(f"tables '{self.name}': scale_table without scale_bound")
        elif self.medians is not None and self.medians.shape != (t,):
            raise BundleError(f"tables '{self.name}': {self.medians.shape[0]} medians for {t} channels")


def tables_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, EntropyTables]:
    """Group flat ``<prefix>.<field>`` arrays into :class:`EntropyTables` by prefix, with dtype checks."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        prefix, _, name = key.rpartition(".")
        if not prefix:
            raise BundleError(f"tables.npz key '{key}' has no '<model>.' prefix")
        groups.setdefault(prefix, {})[name] = np.asarray(value)
    out = {}
    for prefix, g in groups.items():
        missing = {"cdf", "cdf_length", "offset"} - g.keys()
        if missing:
            raise BundleError(f"tables '{prefix}' lack {sorted(missing)}")
        for k in ("cdf", "cdf_length", "offset"):
            if g[k].dtype != np.int32:
                raise BundleError(f"tables '{prefix}.{k}' must be int32, is {g[k].dtype}")
        bound = g.get("scale_bound")
        t = EntropyTables(
            name=prefix,
            cdf=np.ascontiguousarray(g["cdf"]),
            cdf_length=np.ascontiguousarray(g["cdf_length"]).reshape(-1),
            offset=np.ascontiguousarray(g["offset"]).reshape(-1),
            medians=None if "medians" not in g else np.ascontiguousarray(g["medians"], dtype=np.float32).reshape(-1),
            scale_table=None
            if "scale_table" not in g
            else np.ascontiguousarray(g["scale_table"], dtype=np.float32).reshape(-1),
            scale_bound=None if bound is None else np.float32(bound),
        )
        t.validate()
        out[prefix] = t
    return out


@dataclass(frozen=True)
class GraphSpec:
    name: str
    file: str | None
    role: str
    parse_critical: bool
    precision: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Bundle:
    """A loaded codec bundle: manifest, graph specs, entropy tables, model hash."""

    manifest: dict
    tables: dict[str, EntropyTables]
    path: Path | None = None

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> "Bundle":
        """Read and validate the bundle at ``path``: manifest paths stay inside it and, when the manifest records
        file digests (every exported bundle does), each file is checked against its digest once, here."""
        path = Path(path)
        manifest = read_manifest(path)
        verify_files(path, manifest)
        try:
            with np.load(path / TABLES, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise BundleError(f"{path} has no {TABLES}") from None
        except (ValueError, OSError) as e:
            raise BundleError(f"{path}/{TABLES} cannot be read: {e}") from None
        b = cls(manifest, tables_from_arrays(arrays), path)
        b.validate()
        return b

    @classmethod
    def from_parts(cls, manifest: dict, tables: dict[str, np.ndarray] | dict[str, EntropyTables]) -> "Bundle":
        if tables and not isinstance(next(iter(tables.values())), EntropyTables):
            tables = tables_from_arrays(tables)
        b = cls(manifest, dict(tables), None)
        b.validate(check_files=False)
        return b

    # ---- validation ---------------------------------------------------------------------------------------
    def validate(self, check_files: bool = True) -> None:
        m = self.manifest
        check_format(m)
        for key in ("model", "pad_multiple", "plan", "graphs"):
            if key not in m:
                raise BundleError(f"manifest lacks '{key}'")
        if not isinstance(self.pad_multiple, int) or self.pad_multiple < 1:
            raise BundleError(f"bad pad_multiple {m['pad_multiple']!r}")
        kind = self.plan_kind
        if kind not in PLAN_GRAPHS:
            raise BundleError(f"unknown plan kind '{kind}' (known: {', '.join(PLAN_GRAPHS)})")
        h = m["model"].get("hash", "")
        if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h.lower())):
            raise BundleError("manifest model.hash must be 64 hex digits (sha256)")
        if kind == "grouped_context":
            for g in level_graphs(self.plan):
                if g not in m["graphs"]:
                    raise BundleError(f"plan '{kind}' needs graph '{g}', manifest has {sorted(m['graphs'])}")
        for prefix in self.prefixes:
            for g in PLAN_GRAPHS[kind]:
                if prefix + g not in m["graphs"]:
                    raise BundleError(f"plan '{kind}' needs graph '{prefix + g}', manifest has {sorted(m['graphs'])}")
        for name in m["graphs"]:
            if graph_role(name)[1] and not self.graph(name).parse_critical:
                raise BundleError(f"graph '{name}' must be marked parse_critical (it feeds the entropy coder)")
        if check_files and self.path is not None:
            for name in m["graphs"]:
                spec = self.graph(name)
                if spec.file and not (self.path / spec.file).is_file():
                    raise BundleError(f"graph '{name}': file {spec.file} missing from {self.path}")

    # ---- accessors ----------------------------------------------------------------------------------------
    @property
    def plan(self) -> dict:
        return self.manifest["plan"]

    @property
    def plan_kind(self) -> str:
        return self.plan.get("kind", "")

    @property
    def prefixes(self) -> list[str]:
        """Graph/table name prefixes, one per width for slimmable models (``w48.``), else ``[""]``."""
        widths = self.plan.get("widths")
        return [f"w{w}." for w in widths] if widths else [""]

    @property
    def pad_multiple(self) -> int:
        return self.manifest["pad_multiple"]

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def model_hash(self) -> bytes:
        return bytes.fromhex(self.manifest["model"]["hash"])

    @property
    def arch(self) -> str:
        return self.manifest["model"].get("arch", "?")

    def graph(self, name: str) -> GraphSpec:
        try:
            g = self.manifest["graphs"][name]
        except KeyError:
            raise BundleError(f"bundle has no graph '{name}'") from None
        return GraphSpec(
            name=name,
            file=g.get("file"),
            role=g.get("role", ""),
            parse_critical=bool(g.get("parse_critical", False)),
            precision=g.get("precision", "fp32"),
            inputs=tuple(i["name"] for i in g.get("inputs", [])),
            outputs=tuple(o["name"] for o in g.get("outputs", [])),
        )

    def graph_path(self, name: str) -> Path:
        spec = self.graph(name)
        if self.path is None or not spec.file:
            raise BundleError(f"graph '{name}' has no ONNX file (in-memory bundle)")
        return self.path / spec.file

    def entropy(self, name: str) -> EntropyTables:
        try:
            return self.tables[name]
        except KeyError:
            raise BundleError(f"tables.npz has no entropy model '{name}' (has {sorted(self.tables)})") from None


def tables_hash(tables: dict[str, EntropyTables]) -> str:
    """sha256 over the tables in a fixed order (used for in-memory bundles that have no exported hash)."""
    h = hashlib.sha256()
    for name in sorted(tables):
        t = tables[name]
        for k in ("cdf", "cdf_length", "offset", "medians", "scale_table", "scale_bound"):
            v = getattr(t, k)
            if v is not None:
                h.update(f"{name}.{k}".encode())
                h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()
