"""Plan ``grouped_slices`` (GIT-SSIC) end to end on the tiny model: the mask stream, per-(group, slice)
streams, torch ⇄ ONNX Runtime identity, decoding a subset of groups, the CLI and TensorRT-RTX."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_runtime_support import record_progress, test_image  # noqa: E402

from runtime import (  # noqa: E402
    BitstreamError,
    Codec,
    GroupError,
    container,  # noqa: E402
)
from runtime.plans.grouped_slices import coarse_mask, nearest_indexes  # noqa: E402

SIZE = 128  # tiny: latent 8x8, mask grid 4x4
# labels 0/10/20 never collide in the seed's SW-MSA key rule (|difference| > 8)
CLEAN = np.array([[0, 0, 10, 10], [0, 20, 20, 10], [0, 20, 0, 0], [0, 0, 0, 0]])
QUIRK = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])  # 1 in a wrap window beside 0


@pytest.fixture(scope="module")
def model():
    from train.models.seeded import codable_model

    torch.set_num_threads(1)
    return codable_model("gitssic", "tiny")


@pytest.fixture(scope="module")
def bundle(model, tmp_path_factory):
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("gitssic")
    save_checkpoint(d / "m.pth", model, lmbda=0.01, metric="mse", step=0, epoch=0, stats={})
    res = export_bundle(d / "m.pth", d / "bundle", size=(SIZE, SIZE), progress=False)
    assert res["manifest"]["plan"]["kind"] == "grouped_slices"
    return res


def _streams(data: bytes) -> dict[str, bytes]:
    return {s.kind: s.payload for s in container.unpack(data)[1]}


def _blocks(mask, groups):
    """Boolean H×W: the 32-px cells of ``groups``."""
    return np.isin(mask, groups).repeat(32, 0).repeat(32, 1)


def test_bundle_graphs_take_the_mask_and_pass_ort_parity(bundle):
    g = bundle["manifest"]["graphs"]
    assert [i["name"] for i in g["analysis"]["inputs"]] == ["x", "mask"]
    assert [i["name"] for i in g["synthesis"]["inputs"]] == ["y_hat", "mask"]
    assert g["slice0"]["parse_critical"] and g["hyper_synthesis"]["parse_critical"]
    assert [i["name"] for i in g["slice2"]["inputs"]] == ["hyper", "y_hat_0", "y_hat_1"]
    assert bundle["parity"] and all(r.ok for r in bundle["parity"])


def test_torch_and_ort_give_identical_symbols_and_streams_for_every_group(model, bundle):
    im = test_image(SIZE, SIZE)
    ref = Codec.from_model(model).encode(im, mask=CLEAN)
    ort = Codec.open(bundle["bundle"], backend="onnxruntime")
    data = ort.encode(im, mask=CLEAN)
    s_ref, s_ort = _streams(ref), _streams(data)
    groups = [0, 10, 20]
    S = model.num_slices
    assert list(s_ort) == ["mask", "z"] + [f"g{g}.y{i}" for i in range(S) for g in groups]
    assert s_ort == s_ref  # same symbols (CRCs in the container) and bytes, stream by stream
    crc = {s.kind: s.symbols_crc for s in container.unpack(data)[1]}
    assert crc == {s.kind: s.symbols_crc for s in container.unpack(ref)[1]}
    assert ort.last_stats["group_bytes"] == {g: sum(len(s_ort[f"g{g}.y{i}"]) for i in range(S)) for g in groups}
    # either side decodes the other's bitstream to the same image
    assert np.array_equal(ort.decode(ref), Codec.from_model(model).decode(data))


def test_subset_decode_equals_the_full_decode_inside_the_decoded_groups(bundle, model):
    c = Codec.open(bundle["bundle"], backend="onnxruntime")
    data = c.encode(test_image(SIZE, SIZE, seed=1), mask=CLEAN)
    assert (
        model.g_s.colliding_labels(torch.from_numpy(CLEAN).repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None])
        == set()
    )
    full = c.decode(data).astype(np.int16)
    for groups in ([10], [0, 20], [20]):
        part, steps = record_progress(lambda cb: c.decode(data, groups=groups, progress=cb))
        part = part.astype(np.int16)
        assert steps[-1][1] == c.last_stats["network_calls"] == 2 + c.last_stats["sequential_steps"]  # per slice
        assert c.last_stats["groups_decoded"] == groups
        inside = _blocks(CLEAN, groups)
        assert np.abs(part - full)[inside].max() <= 1  # rounding of float ties only
        assert np.abs(part - full)[~inside].mean() > 5  # the rest really was not decoded


def test_subset_decode_quirk_where_shifted_window_keys_collide(bundle, model):
    """The seed's SW-MSA key (region + label) lets labels 0 and 1 meet in the wrap-around window: decoding
    group 1 alone differs from the full decode inside it -- pinned, and reported by the model."""
    lat = torch.from_numpy(QUIRK).repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    assert model.g_s.colliding_labels(lat) == {0, 1}
    c = Codec.open(bundle["bundle"], backend="onnxruntime")
    data = c.encode(test_image(SIZE, SIZE, seed=2), mask=QUIRK)
    full, part = c.decode(data).astype(np.int16), c.decode(data, groups=[1]).astype(np.int16)
    assert np.abs(part - full)[_blocks(QUIRK, [1])].max() > 1


def test_unknown_or_missing_group_is_a_clear_error(bundle):
    c = Codec.open(bundle["bundle"], backend="onnxruntime")
    data = c.encode(test_image(SIZE, SIZE), mask=CLEAN)
    with pytest.raises(GroupError, match=r"group\(s\) 3 are not in this bitstream \(it has 0, 10, 20\)"):
        c.decode(data, groups=[3])
    hdr, streams = container.unpack(data)
    cut = container.pack(hdr, [s for s in streams if s.kind != "g10.y2"])
    c.decode(cut, groups=[0, 20])  # group 10's streams are never read
    with pytest.raises(BitstreamError, match="stream 'g10.y2' is missing"):
        c.decode(cut, groups=[10])
    with pytest.raises(GroupError):
        c.decode(data, groups=[])


def test_mask_forms_and_default_single_group(bundle):
    c = Codec.open(bundle["bundle"], backend="onnxruntime")
    im = test_image(SIZE, SIZE)
    full_res = CLEAN.repeat(32, 0).repeat(32, 1)
    latent = CLEAN.repeat(2, 0).repeat(2, 1)
    assert (
        _streams(c.encode(im, mask=full_res))
        == _streams(c.encode(im, mask=latent))
        == _streams(c.encode(im, mask=CLEAN))
    )
    one = _streams(c.encode(im))  # no mask: one group and no mask stream
    assert list(one) == ["z"] + [f"g0.y{i}" for i in range(5)]
    assert np.array_equal(c.decode(c.encode(im)), c.decode(c.encode(im, mask=np.zeros((4, 4), np.int32))))
    with pytest.raises(ValueError, match="must be"):
        c.encode(im, mask=np.zeros((7, 7), np.int32))
    # centred padding: a 100x120 image pads to 128x128; the mask follows the image
    m = np.zeros((100, 120), np.int32)
    m[:, 60:] = 5
    cm = coarse_mask(m, (100, 120), 64)
    assert cm.shape == (4, 4) and cm[0, 0] == 0 and cm[1, 3] == 5


def test_nearest_index_rule_matches_the_model():
    from train.models.gitssic import nearest_scale_indexes

    table = np.exp(np.linspace(np.log(0.11), np.log(256), 64)).astype(np.float32)
    s = np.exp(np.random.default_rng(0).uniform(np.log(0.01), np.log(400), 50000)).astype(np.float32)
    s = np.concatenate([s, table, (table[1:] + table[:-1]) / 2, np.nextafter(table, 0)]).astype(np.float32)
    ref = nearest_scale_indexes(torch.from_numpy(s), torch.from_numpy(table)).numpy()
    np.testing.assert_array_equal(nearest_indexes(s, table), ref)


def test_cli_mask_groups_and_info(bundle, tmp_path, capsys):
    from PIL import Image

    from runtime.__main__ import main

    Image.fromarray(test_image(SIZE, SIZE)).save(tmp_path / "x.png")
    Image.fromarray(CLEAN.astype(np.uint8)).save(tmp_path / "labels.png")
    b = str(bundle["bundle"])
    assert (
        main(
            [
                "encode",
                b,
                str(tmp_path / "x.png"),
                "-o",
                str(tmp_path / "x.lic"),
                "--mask",
                str(tmp_path / "labels.png"),
                "--backend",
                "onnxruntime",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "decode",
                b,
                str(tmp_path / "x.lic"),
                "-o",
                str(tmp_path / "p.png"),
                "--groups",
                "10,20",
                "--backend",
                "onnxruntime",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(tmp_path / "x.lic")]) == 0
    out = capsys.readouterr().out
    assert "3 groups" in out and all(f"group {g}" in out for g in (0, 10, 20))
    assert (
        main(
            [
                "decode",
                b,
                str(tmp_path / "x.lic"),
                "-o",
                str(tmp_path / "q.png"),
                "--groups",
                "4",
                "--backend",
                "onnxruntime",
            ]
        )
        == 1
    )
    assert "not in this bitstream" in capsys.readouterr().err


def test_rtx_parses_and_builds_every_graph(bundle, tmp_path):
    """TensorRT-RTX (CPU build): every graph of the bundle, the mask-driven attention included, parses and
    builds; the engines are recorded in the manifest."""
    pytest.importorskip("tensorrt_rtx")
    import shutil

    from export.trt import build_bundle
    from runtime.bundle import read_manifest

    b = tmp_path / "b"
    shutil.copytree(bundle["bundle"], b)
    new = build_bundle(b, backend="rtx", progress=False)
    man = read_manifest(b)
    assert {e["graph"] for e in new.values()} == set(man["graphs"])
    assert all((b / e["file"]).stat().st_size > 1000 for e in new.values())


def test_groups_benchmark_accounts_for_every_byte(bundle, tmp_path):
    from PIL import Image

    from benchmarks.groups import run, seed_labels

    (tmp_path / "img").mkdir(), (tmp_path / "msk").mkdir()
    for k in range(2):
        Image.fromarray(test_image(SIZE, SIZE, seed=k)).save(tmp_path / "img" / f"i{k}.png")
        m = np.zeros((8, 8), np.uint8)  # latent-size mask: two blobs, binarised and labelled like the seed
        m[0:2, 0:4], m[4:8, 6:8] = 255, 128
        Image.fromarray(m).save(tmp_path / "msk" / f"i{k}.png")
    assert seed_labels(m).max() == 2
    res = run(bundle["bundle"], tmp_path / "img", tmp_path / "msk")
    for r in res["per_image"]:
        assert r["groups"] == 3 and r["mask_bytes"] > 0
        assert (
            r["mask_bytes"] + r["z_bytes"] + r["header_bytes"] + sum(g["bytes"] for g in r["group_bytes"].values())
            == r["bytes"]
        )
        assert r["subset"]["max_abs_diff_inside"] <= 1
