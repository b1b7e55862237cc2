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
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "basic"
WIDTHS = (48, 72, 96, 144, 192)
# ../shared/research/gitssic-basic.md section 2.1: active parameters and true GMAC at 768x512 per module and width
ACTIVE = {"g_a": (356_604, 626_388, 957_228, 1_802_076, 2_891_148),
          "h_a": (371_232, 599_952, 857_472, 1_458_912, 2_175_552),
          "h_s": (566_136, 913_812, 1_304_688, 2_216_040, 3_300_192),
          "g_s": (356_415, 626_199, 957_039, 1_801_887, 2_890_959)}
GMAC = {"g_a": (2.77, 5.71, 9.68, 20.72, 35.90), "h_a": (0.17, 0.27, 0.39, 0.65, 0.95),
        "h_s": (0.44, 0.68, 0.94, 1.51, 2.15), "g_s": (2.77, 5.71, 9.68, 20.72, 35.90)}


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
    assert paper["basic"].coding_plan == "grouped_context" and paper["basic-scanline"].coding_plan == "spatial_context"


def test_active_parameters_per_module_and_width(paper):
    m = paper["basic"]
    for mod in MODULES:
        assert tuple(m.active_parameters(mod, w) for w in WIDTHS) == ACTIVE[mod], mod
    # every module at 192 (+ bottleneck + one coder) .. every module at 48, as the spec's totals
    coder = 2_860_928
    assert sum(a[-1] for a in ACTIVE.values()) + 11_712 + coder == 14_130_491
    assert sum(a[0] for a in ACTIVE.values()) + 11_712 + coder == 4_523_027


@pytest.mark.parametrize("widths", [pytest.param((192,), id="192"),
                                    pytest.param((48, 72, 96, 144), id="48-144", marks=pytest.mark.slow)])
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
@pytest.mark.parametrize("arch,fixture", [("basic", "basic_params.json"), ("basic-scanline", "basic_fixed_ar_params.json")])
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
    assert torch.equal(model.g_s.pgm_model[5].gamma_scales, sd["latent_generative_modules.y_x.pgm_model.5.gamma_scales"])
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
        assert all(len(set(S[g * tiny.M // G:(g + 1) * tiny.M // G, 0, 0].tolist())) == 1 for g in range(G))


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

    view = tiny.at_level(Level(12, 12, 12, 12, "scanline"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        tiny.g_a.pgm_model[3].beta_biases[1] = 0.7  # level of width 12
        want = tiny.g_a(x, 12)
        with lictrt_ops(view.g_a):
            got = view.g_a(x)
        assert torch.allclose(got, want, atol=1e-5)
        tiny.g_a.pgm_model[3].beta_biases[1] = 0.0


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
    level = Level(8, 16, 12, 12, "4stage")
    with torch.no_grad():
        enc = tiny.compress(x, level)
        dec = tiny.decompress(enc["strings"], enc["shape"], level)
        y = tiny.g_a(x, 8)
        ref = tiny.g_s(torch.round(y), 12).clamp(0, 1)
        assert enc["level"] == level and len(enc["strings"][0][0]) > 20
        assert (dec["x_hat"] - x).abs().mean() < (ref - x).abs().mean() + 0.05
        other = tiny.decompress(enc["strings"], enc["shape"], Level(8, 16, 12, 16, "4stage"))
        assert not torch.allclose(other["x_hat"], dec["x_hat"], atol=1e-3)
