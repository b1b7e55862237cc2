"""Checkpoint -> codec bundle: graphs, custom ops, manifest, tables, parity and the CLI's error handling."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.onnx import export_bundle
from export.op_contracts import DOMAIN
from runtime.bundle import read_manifest
from train.coding import coder_tables, model_hash

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
# MambaVC tiny takes over ten minutes to export on a 2-core CPU (13 graphs through the dynamo exporter): slow.
ARCHS = [
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "ssmic",
    pytest.param("mambavc", marks=pytest.mark.slow),
    "slimcae",
]
GDN_ARCHS = {"bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "slimcae"}
SSM_ARCHS = {"ssmic", "mambavc"}
EXPECTED_GRAPHS = {
    "hyperprior": {"analysis", "hyper_synthesis", "synthesis"},
    "mean_scale": {"analysis", "hyper_synthesis", "synthesis"},
    "spatial_context": {"analysis", "hyper_synthesis", "context_step", "synthesis"},
}
PARSE_CRITICAL = {"hyper_synthesis", "context_step"}


def _available(arch):
    from train.models import ARCHS as REG

    if arch not in REG:
        return False
    try:
        REG[arch].model_class()
    except Exception:
        return False
    return True


def _checkpoint(tmp: Path, arch: str) -> Path:
    from train.checkpoint import save_checkpoint
    from train.models import create_model

    torch.manual_seed(0)
    m = create_model(arch, "tiny")
    return save_checkpoint(tmp / f"{arch}.pth", m, lmbda=0.01, metric="mse", step=0, epoch=0)


_CACHE: dict = {}  # module-level so test_rtx.py (which imports this fixture) shares the exports


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """arch -> export_bundle result for its tiny model, default parity check (768x512 + a small size)."""

    def get(arch):
        if not _available(arch):
            pytest.skip(f"{arch} is not in the model registry yet")
        if arch not in _CACHE:
            ckpt = _checkpoint(tmp_path_factory.mktemp(arch), arch)
            _CACHE[arch] = export_bundle(ckpt, progress=False)
        return _CACHE[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
def test_bundle_graphs_are_valid_onnx_with_custom_ops(exported, arch):
    res = exported(arch)
    man, bundle = res["manifest"], res["bundle"]
    kind = man["plan"]["kind"]
    if kind in EXPECTED_GRAPHS:
        assert set(man["graphs"]) == EXPECTED_GRAPHS[kind]
    seen_ops = set()
    for name, g in man["graphs"].items():
        m = onnx.load(str(bundle / g["file"]))
        onnx.checker.check_model(m, full_check=True)
        opset = [o.version for o in m.opset_import if o.domain == ""][0]
        funcs = {(f.domain, f.name): f for f in m.functions}
        for n in m.graph.node:
            if n.domain == DOMAIN:
                seen_ops.add(n.op_type)
                attrs = {a.name: a for a in n.attribute}
                assert attrs["plugin_namespace"].s == b"lictrt" and attrs["plugin_version"].s == b"2"
                assert (DOMAIN, n.op_type) in funcs, f"{name}: {n.op_type} has no function body"
        for f in funcs.values():
            assert [o.version for o in f.opset_import if o.domain == ""] == [opset]
            assert not {n.op_type for n in f.node} & {"Loop", "Scan"}
            made = {o: n for n in f.node for o in n.output}
            for n in f.node:  # an If only on an attribute (a constant once inlined: runtimes fold it away)
                if n.op_type == "If":
                    cast = made[n.input[0]]
                    assert cast.op_type == "Cast" and made[cast.input[0]].attribute[0].ref_attr_name
        assert not {n.op_type for n in m.graph.node} & {"Loop", "Scan"}
        assert g["parse_critical"] == (name in PARSE_CRITICAL or name.startswith(("slice", "lrp")))
    if arch in SSM_ARCHS:
        assert "SelectiveScan2D" in seen_ops
    if arch in GDN_ARCHS:
        assert "GeneralizedDivisiveNorm" in seen_ops


@pytest.mark.parametrize("arch", ARCHS)
def test_parity_every_graph_at_768x512_and_another_size(exported, arch):
    res = exported(arch)
    graphs = set(res["manifest"]["graphs"])
    checked = {(r.graph, r.input.split()[-1]) for r in res["parity"]}
    sizes = {s for _, s in checked}
    assert "512x768" in sizes and len(sizes) >= 2
    assert {g for g, _ in checked} == graphs
    assert all(r.ok and r.tol == 1e-4 for r in res["parity"])
    assert all(np.isfinite(r.rel) for r in res["parity"])


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "mbt2018"])
def test_tables_and_hash(exported, arch):
    res = exported(arch)
    t = np.load(res["bundle"] / "tables.npz")
    for p in ("z", "y"):
        assert t[f"{p}.cdf"].dtype == np.int32 and t[f"{p}.cdf"].ndim == 2
        assert t[f"{p}.cdf_length"].shape == t[f"{p}.offset"].shape == (t[f"{p}.cdf"].shape[0],)
    assert t["z.medians"].dtype == np.float32
    assert t["y.scale_table"].dtype == np.float32 and t["y.scale_bound"].shape == ()
    from train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(res["bundle"].with_suffix(".pth"))
    tables = coder_tables(model)
    for k in tables:
        np.testing.assert_array_equal(tables[k], t[k])
    assert model_hash(model, tables) == res["manifest"]["model"]["hash"]
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert model_hash(model, tables) != res["manifest"]["model"]["hash"]


def test_manifest_on_disk(exported):
    res = exported("mbt2018")
    man = read_manifest(res["bundle"])
    assert man["format"] == "lictrt-bundle" and man["pad_multiple"] == 64
    assert man["plan"]["kind"] == "spatial_context"
    cs = man["graphs"]["context_step"]
    assert [i["name"] for i in cs["inputs"]] == ["params", "windows"]
    assert cs["inputs"][1]["shape"][1:] == [24, 5, 5] and cs["outputs"][0]["shape"] == ["P", 24]
    assert man["graphs"]["analysis"]["outputs"][0]["shape"] == [1, 24, "H/16", "W/16"]
    assert man["graphs"]["synthesis"]["parse_critical"] is False


def test_polygraphy_runs_an_exported_graph(exported):
    if shutil.which("polygraphy") is None:
        pytest.skip("polygraphy not installed")
    res = exported("bmshj2018-hyperprior")
    p = subprocess.run(
        ["polygraphy", "run", str(res["bundle"] / "synthesis.onnx"), "--onnxrt", "--input-shapes", "y_hat:[1,24,2,3]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "PASSED" in p.stdout + p.stderr


def test_fp16_and_fixed_size_export(tmp_path):
    ckpt = _checkpoint(tmp_path, "bmshj2018-hyperprior")
    res = export_bundle(ckpt, tmp_path / "h.bundle", precision="fp16", size=(128, 192), progress=False)
    man = res["manifest"]
    assert man["size"] == [128, 192]
    assert man["graphs"]["analysis"]["precision"] == "fp16"
    assert man["graphs"]["synthesis"]["precision"] == "fp16"
    assert man["graphs"]["hyper_synthesis"]["precision"] == "fp32"  # parse-critical stays fp32
    m = onnx.load(str(res["bundle"] / "analysis.onnx"))
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 128, 192]
    assert any(n.op_type == "Cast" for n in m.graph.node)
    fp16 = [r for r in res["parity"] if r.graph == "synthesis"]
    assert fp16 and all(r.tol is None and 0 < r.rel < 5e-2 for r in fp16)


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "export.onnx", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_cli_errors_are_one_line(tmp_path):
    cases = []
    cases.append(_cli(tmp_path / "missing.pth"))
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(os.urandom(256))
    cases.append(_cli(bad))
    from train.models import create_model

    sd = tmp_path / "bare.pth"
    torch.save(create_model("bmshj2018-hyperprior", "tiny").state_dict(), sd)
    cases.append(_cli(sd, "-a", "no-such-arch"))
    cases.append(_cli(sd, "-a", "ssmic"))  # wrong-arch state_dict
    cases.append(_cli(sd, "-a", "bmshj2018-hyperprior", "--size", "100x64", "--no-check"))  # not a multiple of 64
    for p in cases:
        assert p.returncode != 0
        lines = [l for l in p.stderr.splitlines() if l.strip() and "Warning" not in l and "warnings.warn" not in l]
        assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-1500:]
        assert "Traceback" not in p.stderr


def test_cli_exports_bare_state_dict(tmp_path):
    from train.models import create_model

    sd = tmp_path / "bare.pth"
    m = create_model("bmshj2018-hyperprior", "tiny")
    m.update(force=True)
    torch.save(m.state_dict(), sd)
    p = _cli(sd, "-a", "bmshj2018-hyperprior", "--no-check", "--size", "64x128")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "GeneralizedDivisiveNorm" in p.stdout and "analysis" in p.stdout
    man = json.loads((tmp_path / "bare.bundle" / "manifest.json").read_text())
    assert man["model"]["arch"] == "bmshj2018-hyperprior" and man["parity"]["checked"] is False


@pytest.mark.parametrize("arch", [a for a in ARCHS if isinstance(a, str)])
def test_torch_backend_describes_the_graphs_the_exporter_wrote(exported, arch):
    """One definition of the graphs (train.graphs): the torch backend's in-memory bundle has the exported bundle's
    graph names, I/O names, roles and parse-critical flags, and its model hash."""
    from runtime.backends.torch_ref import bundle_from_model
    from train.checkpoint import load_checkpoint

    res = exported(arch)
    model, _ = load_checkpoint(res["bundle"].with_suffix(".pth"))
    mem = bundle_from_model(model.eval()).manifest
    man = res["manifest"]

    def io(m):
        return {
            n: ([i["name"] for i in g["inputs"]], [o["name"] for o in g["outputs"]], g["role"], g["parse_critical"])
            for n, g in m["graphs"].items()
        }

    assert io(mem) == io(man)
    assert mem["model"]["hash"] == man["model"]["hash"]


def test_fixed_size_export_keeps_the_per_position_axis_dynamic(tmp_path):
    """--size fixes the image axes only: context_step is called with a different number of positions per
    wavefront step, so its leading axis stays dynamic and a fixed-size spatial-context bundle decodes."""
    from runtime import Codec

    ckpt = _checkpoint(tmp_path, "mbt2018")
    res = export_bundle(ckpt, tmp_path / "m.bundle", size=(128, 192), check=False, progress=False)
    m = onnx.load(str(res["bundle"] / "context_step.onnx"))
    dims = [d for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert not dims[0].HasField("dim_value") and dims[1].dim_value > 0
    img = (np.random.default_rng(0).random((128, 192, 3)) * 255).astype(np.uint8)
    codec = Codec.open(res["bundle"], backend="onnxruntime")
    assert codec.decode(codec.encode(img)).shape == img.shape


def test_plan_records_z_stride_where_the_pad_multiple_is_larger():
    """MambaVC and GIT-SSIC ``paper`` pad to 128 (16 x window) while z is H/64: the plan must say so, else every
    decoder reads z's size as H/128 and refuses the stream."""
    from train.graphs import plan_manifest
    from train.models import create_model

    for arch, kind in (("mambavc", "channel_slices"), ("gitssic", "grouped_slices")):
        paper, tiny = create_model(arch, "paper"), create_model(arch, "tiny")
        assert (paper.pad_multiple, paper.downsampling_factor) == (128, 64)
        assert plan_manifest(paper, kind, [])["z_stride"] == 64
        assert "z_stride" not in plan_manifest(tiny, kind, [])  # 64 = pad multiple: the default holds
