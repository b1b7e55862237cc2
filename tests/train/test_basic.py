"""BaSIC (train/models/basic.py): parameter and MAC tables of the spec, the original's state-dict layout,
width slicing, the context coders' stage maps and masks, the frozen stage pattern, training and bitstreams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from train.models import count_parameters, create_model
from train.models.basic import CODERS, MODULES, DynamicGDN, Level, load_original_state_dict, map_original_state_dict

torch.set_num_threads(1)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "basic"
WIDTHS = (48, 72, 96, 144, 192)
# ../shared/research/gitssic-basic.md section 2.1: active parameters and true GMAC at 768x512 per module and width
ACTIVE = {
    "g_a": (356_604, 626_388, 957_228, 1_802_076, 2_891_148),
    "h_a": (371_232, 599_952, 857_472, 1_458_912, 2_175_552),
    "h_s": (566_136, 913_812, 1_304_688, 2_216_040, 3_300_192),
    "g_s": (356_415, 626_199, 957_039, 1_801_887, 2_890_959),
}
GMAC = {
    "g_a": (2.77, 5.71, 9.68, 20.72, 35.90),
    "h_a": (0.17, 0.27, 0.39, 0.65, 0.95),
    "h_s": (0.44, 0.68, 0.94, 1.51, 2.15),
    "g_s": (2.77, 5.71, 9.68, 20.72, 35.90),
}


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return {"basic": create_model("basic", "paper"), "basic-scanline": create_model("basic-scanline", "paper")}


@pytest.fixture(scope="module")
def tiny():
    from train.models.seeded import codable_model

    return codable_model("basic", "tiny")


# ------------------------------------------------------------------------------------------------ sizes
def test_parameter_counts_equal_the_originals(paper):
    assert count_parameters(paper["basic"]) == 26_211_604
    assert count_parameters(paper["basic-scanline"]) == 14_130_627
    assert paper["basic"].coding_plan == "grouped_context" and paper["basic-scanline"].coding_plan == "grouped_context"


def test_active_parameters_per_module_and_width(paper):
    m = paper["basic"]
    for mod in MODULES:
        assert tuple(m.active_parameters(mod, w) for w in WIDTHS) == ACTIVE[mod], mod
    # every module at 192 (+ bottleneck + one coder) .. every module at 48, as the spec's totals
    coder = 2_860_928
    assert sum(a[-1] for a in ACTIVE.values()) + 11_712 + coder == 14_130_491
    assert sum(a[0] for a in ACTIVE.values()) + 11_712 + coder == 4_523_027


@pytest.mark.parametrize(
    "widths", [pytest.param((192,), id="192"), pytest.param((48, 72, 96, 144), id="48-144", marks=pytest.mark.slow)]
)
def test_macs_per_module_and_width_at_768x512(paper, widths):
    from benchmarks.macs import count_model

    m = paper["basic"].eval()
    for w in widths:
        res = count_model(m.at_level(m.uniform_level(w)), (512, 768))
        for mod in MODULES:
            got = res["graphs"][mod]["total_macs"] / 1e9
            want = GMAC[mod][WIDTHS.index(w)]
            assert abs(got - want) <= 0.01 * want + 0.005, (mod, w, got, want)  # table rounded to 0.01 G


# ------------------------------------------------------------------------------------------------ the original's names
@pytest.mark.parametrize(
    "arch,fixture", [("basic", "basic_params.json"), ("basic-scanline", "basic_fixed_ar_params.json")]
)
def test_fixture_shaped_original_state_dicts_load_strictly(paper, arch, fixture):
    entries = json.loads((FIXTURES / fixture).read_text())
    g = torch.Generator().manual_seed(1)
    original = {k: torch.rand(shape, generator=g) for k, shape in entries}
    for k in original:  # the predictor's final conv has two names (final.*, model.2.*): one tensor
        if ".topo_group_predictor.model.2." in k:
            original[k] = original[k.replace(".model.2.", ".final.")]
    model = paper[arch]
    load_original_state_dict(model, original)
    ours = model.state_dict()
    mapped = map_original_state_dict(original)
    assert set(mapped) <= set(ours) and all(torch.equal(ours[k], v.to(ours[k].dtype)) for k, v in mapped.items())
    assert set(ours) - set(mapped) == {k for k in ours if k.startswith("gaussian_conditional.")}
    # a few names the map must send to the right layers
    sd = original
    assert torch.equal(model.g_a.pgm_model[0].weight, sd["latent_inference_modules.x_y.pgm_model.0.conv.weight"])
    gs = sd["latent_generative_modules.y_x.pgm_model.5.gamma_scales"]
    assert torch.equal(model.g_s.pgm_model[5].gamma_scales, gs)
    key = "topo_group_context_model.param_merger_out.3.bias"
    src = f"latent_node_entropy_coders.y.coders.4.{key}" if arch == "basic" else f"latent_node_entropy_coders.y.{key}"
    assert torch.equal(model.context_coders[-1].topo_group_context_model.param_merger_out[3].bias, sd[src])
    with pytest.raises(KeyError):
        map_original_state_dict({"something.else": torch.zeros(1)})


def test_loaded_stage_pattern_follows_the_cache_and_survives_casts():
    model = create_model("basic", "tiny")
    coder = model.context_coders[1]  # 8-stage: G=4, L=8
    cache = torch.randn(1, 32, 2, 2)
    sd = model.state_dict()
    sd["context_coders.1.topo_group_predictor_cache"] = cache
    model.load_state_dict(sd)
    want = cache.reshape(4, 8, 2, 2).argmax(1)
    assert torch.equal(coder.stage_table, want)
    # the original re-samples the pattern in _apply (.to/.cuda); ours keeps it, also through half precision
    before = [c.stage_table.clone() for c in model.context_coders[1:]]
    model.to(torch.float64).half().float()
    assert all(torch.equal(b, c.stage_table) for b, c in zip(before, model.context_coders[1:]))
    coder.resample_stage_pattern(torch.Generator().manual_seed(5))  # only on request
    assert torch.equal(coder.stage_table, coder.topo_group_predictor_cache.reshape(4, 8, 2, 2).argmax(1))


# ------------------------------------------------------------------------------------------------ stage maps
def test_stage_counts_at_768x512(tiny):
    H, W = 512 // 16, 768 // 16
    counts = {name: len(c.stages(H, W)) for name, c in zip(tiny.coders, tiny.context_coders)}
    assert counts["scanline"] == H * W
    limits = {"8stage": 8, "6stage": 6, "4stage": 4, "2stage": 2}
    for name, limit in limits.items():
        assert 1 <= counts[name] <= limit
    for name, (G, L) in ((n, CODERS[n]) for n in limits):
        S = tiny.context_coders[tiny.coder_index(name)].stage_map(H, W)
        assert S.shape == (tiny.M, H, W) and S.max() < L
        assert torch.equal(S[:, :2, :2].repeat(1, H // 2, W // 2), S)  # a 2x2 pattern tiled over the latent
        assert all(len(set(S[g * tiny.M // G : (g + 1) * tiny.M // G, 0, 0].tolist())) == 1 for g in range(G))


@pytest.mark.parametrize("coder", list(CODERS))
def test_each_stage_depends_only_on_earlier_stages(tiny, coder):
    """Stage-by-stage decoding equals the parallel masked pass: changing symbols of stage >= s leaves the
    parameters of stage s untouched, and every earlier stage's symbols are seen by some later one."""
    c = tiny.context_coders[tiny.coder_index(coder)]
    g = torch.Generator().manual_seed(0)
    H = W = 6
    y = torch.randn(1, tiny.M, H, W, generator=g) * 3
    prior = torch.randn(1, 2 * tiny.M, H, W, generator=g)
    S = c.stage_map(H, W)[None]
    with torch.no_grad():
        mu, sigma = c.params(y, prior)
        stages = c.stages(H, W)
        for s in stages[:12]:
            y2 = y.clone()
            y2[S >= s] = torch.randn(int((S >= s).sum()), generator=g) * 5
            mu2, sigma2 = c.params(y2, prior)
            sel = S == s
            assert torch.allclose(mu[sel], mu2[sel], atol=1e-5) and torch.allclose(sigma[sel], sigma2[sel], atol=1e-5)
        if len(stages) > 1:  # the context really is used
            y3 = y.clone()
            y3[S == stages[0]] += 1.0
            mu3, _ = c.params(y3, prior)
            assert not torch.allclose(mu3[S > stages[0]], mu[S > stages[0]])


def test_scanline_coder_is_a_mask_a_conv_and_plain_1x1_net(tiny):
    from compressai.layers import MaskedConv2d

    c = tiny.context_coders[0]
    cm = c.topo_group_context_model
    ref = MaskedConv2d(tiny.M, 2 * tiny.M, kernel_size=5, padding=2)
    ref.weight.data.copy_(cm.context_prediction.weight)
    ref.bias.data.copy_(cm.context_prediction.bias)
    y, prior = torch.randn(1, tiny.M, 5, 7), torch.randn(1, 2 * tiny.M, 5, 7)
    with torch.no_grad():
        want = cm.param_merger_out(cm.param_merger_in(torch.cat([ref(y), prior], 1)))
        assert torch.allclose(c.raw_params(y, prior), want, atol=1e-5)


# ------------------------------------------------------------------------------------------------ slicing
def test_widths_slice_one_set_of_weights_and_gdn_levels(tiny):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for w in tiny.level_widths:
            view = tiny.at_level(tiny.uniform_level(w))
            y = tiny.g_a(x, w)
            assert y.shape[1] == tiny.M and torch.allclose(view.g_a(x), y, atol=1e-6)
            assert tiny.g_s(y, w).shape == x.shape and torch.allclose(view.g_s(y), tiny.g_s(y, w), atol=1e-6)
            assert tiny.h_a.pgm_model[2](torch.zeros(1, w, 8, 8), w).shape[1] == w
        assert view.g_a.steps[0] is tiny.g_a.pgm_model[0]  # sliced at call time, never copied
    with pytest.raises(ValueError):
        tiny.g_a(x, 10)


def test_dynamic_gdn_levels_and_their_export_view():
    from compressai.layers import GDN

    torch.manual_seed(0)
    dyn, plain = DynamicGDN(8, 3), GDN(8)
    plain.load_state_dict({k: v for k, v in dyn.state_dict().items() if k in plain.state_dict()})
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert torch.allclose(dyn(x, 2), plain(x), atol=1e-6)  # scales 1, biases 0: the plain GDN
        dyn.beta_scales[1], dyn.gamma_biases[1] = 0.5, 0.3
        got = dyn(x[:, :4], 1)
        beta = 0.25 * plain.beta_reparam(plain.beta[:4])
        gamma = plain.gamma_reparam(plain.gamma[:4, :4]) + 0.09  # P(0.5) = 0.25, P(0.3) = 0.09
        want = x[:, :4] * torch.rsqrt(F.conv2d(x[:, :4] ** 2, gamma.reshape(4, 4, 1, 1), beta))
        assert torch.allclose(got, want, atol=1e-5)
        assert not torch.allclose(dyn(x[:, :4], 0), got)  # level 0 keeps its own (untouched) scalars


def test_exported_gdn_folds_the_level_constants(tiny):
    from export.registry import lictrt_ops

    view = tiny.at_level(Level(8, 8, 8, 8, "scanline"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        tiny.g_a.pgm_model[3].beta_biases[0] = 0.7  # level of width 8
        want = tiny.g_a(x, 8)
        with lictrt_ops(view.g_a):
            got = view.g_a(x)
        assert torch.allclose(got, want, atol=1e-5)
        tiny.g_a.pgm_model[3].beta_biases[0] = 0.0


# ------------------------------------------------------------------------------------------------ training
def test_training_draws_levels_and_trains_every_coder():
    from train.loss import RateDistortionLoss

    torch.manual_seed(0)
    model = create_model("basic", "tiny").train()
    seen = {m: set() for m in MODULES}
    for _ in range(12):
        lv = model.random_level()
        for m in MODULES:
            seen[m].add(getattr(lv, m))
    assert all(len(s) >= 2 for s in seen.values())
    out = model(torch.rand(2, 3, 64, 64))
    assert set(out["aux_likelihoods"]) == {f"y_{c}" for c in model.coders[1:]}
    loss = RateDistortionLoss(0.01)(out, torch.rand(2, 3, 64, 64))
    loss["loss"].backward()
    for coder in model.context_coders:
        assert coder.topo_group_context_model.param_merger_in.weight.grad.abs().sum() > 0
    assert model.g_a.pgm_model[0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ bitstreams
def test_level_roundtrip_and_a_file_decodes_only_at_its_level(tiny):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    level = Level(8, 16, 8, 16, "4stage")
    with torch.no_grad():
        enc = tiny.compress(x, level)
        dec = tiny.decompress(enc["strings"], enc["shape"], level)
        y = tiny.g_a(x, 8)
        ref = tiny.g_s(torch.round(y), 16).clamp(0, 1)
        assert enc["level"] == level and len(enc["strings"][0][0]) > 20
        assert (dec["x_hat"] - x).abs().mean() < (ref - x).abs().mean() + 0.05
        other = tiny.decompress(enc["strings"], enc["shape"], Level(8, 16, 8, 8, "4stage"))
        assert not torch.allclose(other["x_hat"], dec["x_hat"], atol=1e-3)


# ------------------------------------------------------------------------------------------------ bundle and runtime
def _kodak_crop(h: int, w: int):
    import numpy as np
    from PIL import Image

    from runtime.image import load

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
    img = next(iter(sorted(path.glob("*.png"))), None) if path.is_dir() else None
    if img is None:  # a deterministic textured image when no sample image ships
        yy, xx = np.mgrid[0:h, 0:w]
        return ((np.stack([np.sin(xx / 7.0), np.cos(yy / 5.0), np.sin((xx + yy) / 11.0)], -1) + 1) * 127).astype(
            np.uint8
        )
    return np.ascontiguousarray(load(Image.open(img).convert("RGB"))[:h, :w])


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from export.onnx import export_bundle
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    tmp = tmp_path_factory.mktemp("basic")
    model = codable_model("basic", "tiny")
    save_checkpoint(tmp / "tiny.pth", model, lmbda=0.01, metric="mse", step=0, epoch=0, stats={})
    res = export_bundle(tmp / "tiny.pth", tmp / "tiny.bundle", check=False, progress=False)
    return res["bundle"], model


def test_bundle_has_every_level_graph_and_describes_levels_as_data(tiny_bundle):
    from runtime.bundle import Bundle

    path, model = tiny_bundle
    b = Bundle.load(path)
    plan = b.plan
    assert plan["kind"] == "grouped_context" and b.model_hash
    axes = {a["name"]: a["values"] for a in plan["levels"]["axes"]}
    assert axes == {**{m: [8, 16] for m in MODULES}, "context": list(CODERS)}
    assert plan["levels"]["presets"]["fastest"] == {**{m: 8 for m in MODULES}, "context": "2stage"}
    assert plan["levels"]["presets"]["full"] == {**{m: 16 for m in MODULES}, "context": "scanline"}
    from runtime.bundle import level_graph

    for m in MODULES:
        for w in (8, 16):
            assert b.graph(level_graph(m, w)).parse_critical == (m == "h_s")
    assert level_graph("h_a", 8) == "w8.hyper_analysis" and b.graph("w8.hyper_analysis").role == "encoder"
    for name, coder in zip(model.coders, model.context_coders):
        spec = plan["coders"][name]
        assert b.graph(spec["graph"]).parse_critical
        if coder.grouping is not None:
            assert spec["stage_table"] == coder.stage_table.tolist() and spec["groups"] == coder.grouping[0]


def test_every_graph_matches_pytorch_in_onnx_runtime(tiny_bundle):
    """ONNX Runtime parity of every (module, width) graph and every context coder against the torch modules."""
    import numpy as np

    from runtime.backends.ort import OrtBackend
    from runtime.backends.torch_ref import TorchBackend
    from runtime.bundle import Bundle

    path, model = tiny_bundle
    b = Bundle.load(path)
    ort, ref = OrtBackend(b, pinned=True), TorchBackend(model, kind="grouped_context")
    g = np.random.default_rng(0)
    h, w = 4, 6  # latent size (image 64x96)
    feeds = {
        "x": g.random((1, 3, 16 * h, 16 * w), np.float32),
        "y": g.normal(0, 4, (1, model.M, h, w)).astype(np.float32),
        "z_hat": np.round(g.normal(0, 3, (1, model.N, h // 4 + 1, w // 4 + 1))).astype(np.float32),
        "y_hat": np.round(g.normal(0, 4, (1, model.M, h, w))).astype(np.float32),
        "params": g.normal(0, 2, (1, 2 * model.M, h, w)).astype(np.float32),
        "windows": np.round(g.normal(0, 4, (7, model.M, 5, 5))).astype(np.float32),
    }
    feeds["z_hat"] = feeds["z_hat"][:, :, :1, :2]
    for name in b.manifest["graphs"]:
        ins = b.graph(name).inputs
        f = {k: feeds[k] for k in ins}
        if name == "context.scanline":
            f["params"] = feeds["params"][0].reshape(2 * model.M, -1)[:, :7].T.copy()
        a, r = ort.run(name, f), ref.run(name, f)
        for k in r:
            scale = float(np.abs(r[k]).max()) or 1.0
            assert a[k].shape == r[k].shape and float(np.abs(a[k] - r[k]).max()) / scale < 1e-4, (name, k)


def _streams(data):
    from runtime import container

    return [(s.kind, s.n_symbols, s.symbols_crc, bytes(s.payload)) for s in container.unpack(data)[1]]


LEVELS_CI = [
    "full",
    "fastest",
    "g_a=8,h_s=8,context=8stage",
    "h_a=8,g_s=8,context=6stage",
    "g_a=16,h_a=8,h_s=16,g_s=8,context=4stage",
    "g_a=8,h_a=16,h_s=8,g_s=16,context=scanline",
]


def _all_levels():
    import itertools

    return [
        ",".join(f"{m}={w}" for m, w in zip(MODULES, ws)) + f",context={c}"
        for ws in itertools.product((8, 16), repeat=4)
        for c in CODERS
    ]


@pytest.mark.parametrize(
    "levels", [pytest.param(LEVELS_CI, id="ci"), pytest.param(_all_levels(), id="every-level", marks=pytest.mark.slow)]
)
def test_torch_and_onnx_runtime_code_identical_symbols(tiny_bundle, levels):
    from runtime.codec import Codec

    path, model = tiny_bundle
    im = _kodak_crop(128, 192)
    dec = Codec.open(path)
    for lv in levels:
        a = Codec.open(path, backend="torch", model=model, parse_path="torch", level=lv).encode(im)
        b = Codec.open(path, level=lv).encode(im)
        assert _streams(a) == _streams(b), lv
        assert (dec.decode(a) == dec.decode(b)).all()


def test_decode_steps_scanline_wavefront_and_staged(tiny_bundle):
    from runtime.codec import Codec
    from runtime.plans.grouped_context import stage_map

    path, model = tiny_bundle
    im = _kodak_crop(512, 768)
    c = Codec.open(path, level="full")
    data = c.encode(im)
    d = Codec.open(path)
    seen = []  # progress: one step per graph call, h_s and g_s around the loop's steps
    d.decode(data, progress=lambda done, total: seen.append((done, total)))
    assert d.last_stats["sequential_steps"] == 3 * (32 - 1) + 48 == 141
    assert seen[-1] == (2 + 141, 2 + 141) and [s[0] for s in seen] == list(range(1, 144))
    limits = {"8stage": 8, "6stage": 6, "4stage": 4, "2stage": 2}
    for name, limit in limits.items():
        data = Codec.open(path, level=f"context={name}").encode(im[:128, :192])
        seen.clear()
        d.decode(data, progress=lambda done, total: seen.append((done, total)))
        coder = model.context_coders[model.coder_index(name)]
        want = len(set(stage_map(coder.stage_table.tolist(), model.M, 8, 12).ravel().tolist()))
        assert d.last_stats["sequential_steps"] == want <= limit and d.last_stats["level"].endswith(name)
        assert seen[-1] == (2 + want, 2 + want) and seen[1][1] == 2 + want  # per stage, announced up front


def test_a_file_decodes_only_to_the_level_in_its_header(tiny_bundle):
    import struct
    import zlib

    from runtime import container
    from runtime.codec import Codec
    from runtime.errors import BitstreamError

    path, _ = tiny_bundle
    im = _kodak_crop(128, 192)
    a = Codec.open(path, level="g_a=8,h_a=16,h_s=16,g_s=8,context=4stage").encode(im)
    b = Codec.open(path, level="g_a=8,h_a=16,h_s=16,g_s=16,context=4stage").encode(im)
    assert _streams(a) == _streams(b)  # same symbols: only the synthesis width differs
    x_a = Codec.open(path, level="fastest").decode(a)  # the decoder's own level does not matter
    x_b = Codec.open(path, level="full").decode(b)
    assert (x_a == Codec.open(path).decode(a)).all() and not (x_a == x_b).all()
    hdr, _ = container.unpack(a)
    assert list(hdr.level) == [0, 1, 1, 0, 3] and hdr.flags & container.FLAG_LEVEL
    # the level is covered by the header CRC; rewritten with a valid CRC, a parse-critical width changes the
    # symbols' tables and the decoder's stream checks refuse the file
    bad = bytearray(a)
    end = 56 + 32 * len(_streams(a))
    bad[end + 1 + 2] = 0  # h_s: 16 -> 8
    struct.pack_into("<I", bad, end + 6, zlib.crc32(bytes(bad[: end + 6])))
    with pytest.raises(BitstreamError):
        Codec.open(path).decode(bytes(bad))


def test_level_text_presets_and_errors(tiny_bundle):
    from runtime.bundle import Bundle
    from runtime.codec import Codec, CodecError
    from runtime.levels import LevelError, levels_of

    path, _ = tiny_bundle
    lv = levels_of(Bundle.load(path).plan)
    assert lv.parse("fastest") == {**{m: 8 for m in MODULES}, "context": "2stage"}
    assert lv.parse("g_a=8,context=4stage") == {"g_a": 8, "h_a": 16, "h_s": 16, "g_s": 16, "context": "4stage"}
    assert lv.from_bytes(lv.to_bytes(lv.parse("h_s=8"))) == lv.parse("h_s=8")
    for bad in ("g_a=48", "g_x=8", "context=3stage", "g_a=eight", "cheap"):
        with pytest.raises(LevelError):
            lv.parse(bad)
    with pytest.raises(CodecError, match="not offered"):
        Codec.open(path, level="g_a=12")


def test_cli_encodes_at_a_level_and_info_shows_it(tiny_bundle, tmp_path, capsys):
    from PIL import Image

    from runtime.__main__ import main

    path, _ = tiny_bundle
    Image.fromarray(_kodak_crop(128, 192)).save(tmp_path / "x.png")
    lic = tmp_path / "x.lic"
    assert (
        main(["encode", str(path), str(tmp_path / "x.png"), "-o", str(lic), "--level", "g_a=8,g_s=16,context=4stage"])
        == 0
    )
    assert main(["decode", str(path), str(lic), "-o", str(tmp_path / "y.png")]) == 0
    assert "level g_a=8,h_a=16,h_s=16,g_s=16,context=4stage" in capsys.readouterr().out
    assert main(["info", str(lic), "--bundle", str(path)]) == 0
    out = capsys.readouterr().out
    assert "flags 0x0002" in out and "level g_a=8,h_a=16,h_s=16,g_s=16,context=4stage" in out
    assert main(["encode", str(path), str(tmp_path / "x.png"), "-o", str(lic), "--level", "fastest"]) == 0
    assert main(["info", str(lic)]) == 0 and "level indexes [0, 0, 0, 0, 4]" in capsys.readouterr().out
    assert main(["encode", str(path), str(tmp_path / "x.png"), "-o", str(lic), "--level", "g_a=9"]) == 1
    assert "not offered" in capsys.readouterr().err


@pytest.mark.slow
def test_macs_cli_on_the_exported_paper_bundle(tmp_path):
    """`python -m benchmarks macs BUNDLE` on a paper-size BaSIC bundle: every (module, width) graph as the spec."""
    from benchmarks.macs import main
    from export.onnx import export_bundle
    from runtime.bundle import level_graph
    from train.checkpoint import save_checkpoint
    from train.models.seeded import codable_model

    save_checkpoint(
        tmp_path / "paper.pth", codable_model("basic", "paper"), lmbda=0.0067, metric="mse", step=0, epoch=0, stats={}
    )
    export_bundle(tmp_path / "paper.pth", tmp_path / "paper.bundle", check=False, progress=False)
    assert main([str(tmp_path / "paper.bundle"), "--json", str(tmp_path / "macs.json")]) == 0
    graphs = json.loads((tmp_path / "macs.json").read_text())["graphs"]
    for mod in MODULES:
        for w, want in zip(WIDTHS, GMAC[mod]):
            got = graphs[level_graph(mod, w)]["total_macs"] / 1e9
            assert abs(got - want) <= 0.01 * want + 0.005, (mod, w, got, want)
    assert graphs["context.scanline"]["calls_per_image"] == 32 * 48
    assert all(abs(graphs[f"context.{c}"]["total_macs"] / 1e9 - 4.39) < 0.01 for c in CODERS if c != "scanline")


@pytest.mark.slow
def test_trainer_runs_basic_and_the_checkpoint_keeps_the_stage_pattern(tmp_path, train_dir):
    from train.checkpoint import load_checkpoint
    from train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        arch="basic",
        preset="tiny",
        data=train_dir,
        output=tmp_path / "basic.pth",
        steps=2,
        batch_size=2,
        patch_size=64,
        lr=1e-3,
        seed=0,
        max_seconds=120,
        quiet=True,
    )
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    after = trainer.model.state_dict()
    for k in ("context_coders.4.topo_group_context_model.param_merger_in.weight", "g_a.pgm_model.0.weight"):
        assert not torch.equal(before[k], after[k]), k  # every coder and the transforms are trained
    model, _ = load_checkpoint(tmp_path / "basic.pth")
    for a, b in zip(model.context_coders[1:], trainer.model.context_coders[1:]):
        assert torch.equal(a.stage_table, b.stage_table.cpu())
