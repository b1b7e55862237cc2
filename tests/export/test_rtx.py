"""TensorRT-RTX on CPU: the plugin contract our nodes present, and that every fp32 graph parses and builds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.op_contracts import OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION

try:
    import tensorrt_rtx  # noqa: F401

    HAVE_RTX = True
except Exception:  # ImportError or a broken install
    HAVE_RTX = False

pytestmark = pytest.mark.skipif(
    not HAVE_RTX, reason="tensorrt_rtx not importable (pip install tensorrt-rtx==1.7.1.116)"
)
ROOT = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_export import ARCHS, exported  # noqa: E402,F401  (shares the session's exported bundles)


def _probe(onnx_path: Path) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "export.rtx_probe", str(onnx_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "arch,graph,op",
    [
        ("bmshj2018-hyperprior", "analysis", "GeneralizedDivisiveNorm"),
        ("bmshj2018-hyperprior", "synthesis", "GeneralizedDivisiveNorm"),
        ("ssmic", "analysis", "SelectiveScan2D"),
    ],
)
def test_plugin_creator_receives_the_contract_fields(exported, arch, graph, op):
    res = exported(arch)
    out = _probe(res["bundle"] / res["manifest"]["graphs"][graph]["file"])
    assert out["parse_ok"] is False and any("Could not create the plugin" in e for e in out["errors"])
    call = out["calls"][0]
    assert call["creator"] == op
    assert call["namespace"] == PLUGIN_NAMESPACE and call["version"] == PLUGIN_VERSION
    want = [(f.name, f.trt_type) for f in OPS[op].fields]
    assert [(f["name"], f["type"]) for f in call["fields"]] == want
    if op == "GeneralizedDivisiveNorm":
        assert call["fields"][0]["data"] == [1 if graph == "synthesis" else 0]
    else:
        assert call["fields"][0]["data"] == [1]


@pytest.mark.parametrize("arch", ARCHS)
def test_rtx_parses_and_builds_every_fp32_graph(exported, arch, tmp_path):
    import shutil

    from export.trt import build_bundle
    from runtime.bundle import read_manifest

    res = exported(arch)
    bundle = tmp_path / "b"
    shutil.copytree(res["bundle"], bundle)
    pad = res["manifest"]["pad_multiple"]
    new = build_bundle(
        bundle, backend="rtx", shapes=f"{pad}x{pad}:{2 * pad}x{3 * pad}:{4 * pad}x{4 * pad}", progress=False
    )
    man = read_manifest(bundle)
    assert {e["graph"] for e in new.values()} == set(man["graphs"])
    for key, e in new.items():
        assert man["engines"][key] == e
        f = bundle / e["file"]
        assert f.is_file() and f.stat().st_size == e["bytes"] > 1000
        assert e["backend"] == "rtx" and e["precision"] == "fp32" and e["plugins"] is False


def test_rtx_refuses_plugins_and_bad_shapes(exported, tmp_path):
    from export.trt import TrtError, build_bundle, parse_shapes

    res = exported("bmshj2018-hyperprior")
    with pytest.raises(TrtError, match="no plugins"):
        build_bundle(res["bundle"], backend="rtx", plugins="/nonexistent.so", progress=False)
    with pytest.raises(TrtError, match="re-export"):
        build_bundle(res["bundle"], backend="rtx", precision="fp16", progress=False)
    with pytest.raises(TrtError):
        parse_shapes("64x64:32x32:128x128", 64)
    with pytest.raises(TrtError):
        parse_shapes("64x60:64x64:128x128", 64)
    p = subprocess.run(
        [sys.executable, "-m", "export.trt", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 1 and p.stderr.strip().startswith("error: ") and "Traceback" not in p.stderr
