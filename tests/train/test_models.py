"""Specifications of the model zoo (train/models): registry, parameter counts, seed state_dict layout,
and the CompressAI API (forward, update, compress/decompress) of every tiny model."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from train.layers import ss2d
from train.models import ARCHS, count_parameters, create_model, model_config, resolve_config

torch.set_num_threads(1)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "seed_params"
PLANS = {
    "bmshj2018-hyperprior": "hyperprior",
    "mbt2018-mean": "mean_scale",
    "mbt2018": "spatial_context",
    "ssmic": "spatial_context",
    "mambavc": "channel_slices",
    "slimcae": "factorized",
    "basic": "grouped_context",
    "basic-scanline": "grouped_context",
    "gitssic": "grouped_slices",
}


# ------------------------------------------------------------------------------------------- registry
def test_registry_covers_every_architecture_with_its_coding_plan():
    assert set(ARCHS) == set(PLANS)
    for arch, spec in ARCHS.items():
        assert spec.coding_plan == PLANS[arch] and "tiny" in spec.presets and spec.default_preset in spec.presets


@pytest.mark.parametrize(
    "bad",
    [
        dict(arch="nope"),
        dict(arch="ssmic", preset="huge"),
        dict(arch="mbt2018", quality=9),
        dict(arch="mbt2018", preset="q1", quality=1),
        dict(arch="ssmic", preset="tiny", not_a_kwarg=3),
    ],
)
def test_bad_requests_raise_value_error_naming_the_choices(bad):
    with pytest.raises(ValueError) as e:
        create_model(**bad)
    msg = str(e.value)
    if "arch" in bad and bad["arch"] == "nope":
        assert all(a in msg for a in ARCHS)
    if bad.get("preset") == "huge":
        assert "paper" in msg and "tiny" in msg


def test_quality_picks_compressai_zoo_dimensions():
    from compressai.zoo.image import cfgs

    for arch in ("bmshj2018-hyperprior", "mbt2018-mean", "mbt2018"):
        for q in range(1, 9):
            N, M = cfgs[arch][q]
            assert resolve_config(arch, quality=q) == {"N": N, "M": M}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_model_config_rebuilds_the_same_model(arch):
    model = create_model(arch, "tiny")
    config = model_config(model)
    assert json.loads(json.dumps(config)) == config  # plain data: survives JSON and weights_only loads
    assert model.lictrt_arch == arch and model.coding_plan == PLANS[arch]
    assert model.pad_multiple in (16, 64, 128)
    again = create_model(arch, **config)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(again) == shapes(model) and model_config(again) == config


def test_overrides_replace_single_constructor_arguments():
    m = create_model("ssmic", "tiny", d_state=2)
    assert m.g_a.layers[0].blocks[0].op.A_logs.shape[1] == 2 and model_config(m)["d_state"] == 2
    assert model_config(create_model("bmshj2018-hyperprior", quality=3, M=64)) == {"N": 128, "M": 64}


def test_model_config_of_a_directly_built_compressai_model():
    from compressai.models import ScaleHyperprior

    assert model_config(ScaleHyperprior(32, 48)) == {"N": 32, "M": 48}
    with pytest.raises(ValueError):
        model_config(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------- paper sizes
@pytest.fixture(scope="module")
def paper_models():
    return {arch: create_model(arch, "paper") for arch in ("ssmic", "mambavc")}


@pytest.mark.parametrize("arch,millions", [("ssmic", 35.79), ("mambavc", 53.30)])
def test_paper_parameter_counts(paper_models, arch, millions):
    assert abs(count_parameters(paper_models[arch]) / 1e6 - millions) <= 0.01


@pytest.mark.parametrize("arch", ["ssmic", "mambavc"])
def test_state_dict_names_and_shapes_equal_the_seed_repositories(paper_models, arch):
    seed = json.loads((FIXTURES / f"{arch}.json").read_text())
    model = paper_models[arch]
    ours = {n: list(p.shape) for n, p in model.named_parameters()}
    assert ours == seed["parameters"]
    buffers = {n: list(b.shape) for n, b in model.named_buffers()}
    assert buffers == seed["buffers"]
    # a seed state_dict (same names, shapes) loads strictly
    fake_seed_sd = {n: torch.zeros(s) for n, s in {**seed["parameters"], **seed["buffers"]}.items()}
    model.load_state_dict(fake_seed_sd, strict=True)


def test_compressai_parameter_counts():
    assert round(count_parameters(create_model("bmshj2018-hyperprior", quality=1)) / 1e6, 2) == 5.08
    assert round(count_parameters(create_model("bmshj2018-hyperprior", quality=8)) / 1e6, 2) == 11.82


def test_slimcae_full_width_parameter_count():
    # N = 192, widths 192/144/96/72/48 (train/models/slimcae.py docstring):
    #   shared convs: conv9 3->192 (+b) 46,848; conv5 192->192 (+b) 921,792; conv5 (no b) 921,600;
    #                 deconv5 (+b) 921,792 twice; deconv9 192->3 (+b) 46,659           -> 3,780,483
    #   GDN/IGDN: 6 per width, w^2 + w each: 6 * (74,304 + 552)                         ->   449,136
    #   EntropyBottleneck per width: 61 per channel (58 + 3 quantiles): 61 * 552        ->    33,672
    model = create_model("slimcae", "paper")
    assert count_parameters(model) == 3_780_483 + 449_136 + 33_672 == 4_263_291
    # the full-width subnetwork alone: shared convs + its 6 GDNs + its bottleneck
    assert count_parameters(model.at_width(192)) == 3_780_483 + 6 * (192 * 192 + 192) + 61 * 192


# ------------------------------------------------------------------------------------------- tiny models
def _roundtrip(model, x, **kw):
    """compress -> decompress, capturing y (g_a output at the encoder) and y_hat (g_s input at the decoder)."""
    seen = {}
    if kw:  # SlimCAE: y leaves the width's last GDN, y_hat enters its first IGDN
        k = model.width_index(kw["width"])
        g_a, g_s = model.gdn_a[k][-1], model.igdn_s[k][0]
    else:
        g_a, g_s = model.g_a, model.g_s
    h1 = g_a.register_forward_hook(lambda m, i, o: seen.setdefault("y", o))
    h2 = g_s.register_forward_pre_hook(lambda m, i: seen.setdefault("y_hat", i[0]))
    try:
        with torch.no_grad():
            enc = model.compress(x, **kw)
            dec = model.decompress(enc["strings"], enc["shape"], **kw)
    finally:
        h1.remove(), h2.remove()
    return enc, dec, seen["y"], seen["y_hat"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_tiny_model_forward_update_and_real_bitstream_roundtrip(arch):
    torch.manual_seed(0)
    model = create_model(arch, "tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    assert 64 % model.pad_multiple == 0
    with torch.no_grad():
        out = model(x)
    assert out["x_hat"].shape == x.shape
    assert set(out["likelihoods"]) == ({"y"} if arch == "slimcae" else {"y", "z"})
    for lik in out["likelihoods"].values():
        assert torch.isfinite(lik).all() and lik.gt(0).all() and lik.le(1 + 1e-6).all()
    assert torch.isfinite(model.aux_loss())
    model.update(force=True)
    kw = {"width": min(model.widths)} if arch == "slimcae" else {}
    enc, dec, y, y_hat = _roundtrip(model, x, **kw)
    assert all(len(s) == 1 and len(s[0]) > 0 for s in enc["strings"])
    assert dec["x_hat"].shape == x.shape and torch.isfinite(dec["x_hat"]).all()
    # the decoder rebuilt the quantized latent: y_hat = round(y - mu) + mu (+ LRP in [-0.5, 0.5] for MambaVC)
    bound = 1.0 if arch == "mambavc" else 0.5
    assert y_hat.shape == y.shape and (y_hat - y).abs().max() <= bound + 1e-4
    enc2, dec2, _, _ = _roundtrip(model, x, **kw)
    assert enc2["strings"] == enc["strings"] and torch.equal(dec2["x_hat"], dec["x_hat"])
    if arch not in ("mbt2018", "ssmic", "basic", "basic-scanline"):  # forward() rounds y without the means
        with torch.no_grad():
            ref = (model(x, **kw) if kw else model(x))["x_hat"].clamp(0, 1)
        assert (dec["x_hat"] - ref).abs().max() <= 1e-4


def test_slimcae_widths_share_one_set_of_conv_weights():
    model = create_model("slimcae", "tiny").eval()
    assert model.widths == (16, 12, 8)
    model.update(force=True)
    x = torch.rand(1, 3, 32, 32)
    sizes = []
    for w in model.widths:
        enc, dec, y, _ = _roundtrip(model, x, width=w)
        assert y.shape[1] == w and dec["x_hat"].shape == x.shape
        sizes.append(len(enc["strings"][0][0]))
    g_a_48, _ = model.width_modules(8)
    assert g_a_48.convs[0].weight is model.g_a[0].weight  # sliced at call time, never copied
    assert len({id(model.gdn_a[i][0]) for i in range(3)}) == 3  # a GDN per width
    with pytest.raises(ValueError):
        model(x, width=10)


def test_mambavc_exposes_per_slice_networks():
    torch.manual_seed(0)
    model = create_model("mambavc", "tiny").eval()
    S = model.num_slices
    for name in ("atten_mean", "atten_scale", "cc_mean_transforms", "cc_scale_transforms", "lrp_transforms"):
        assert len(getattr(model, name)) == S
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        y = model.g_a(x)
        med = model.entropy_bottleneck._get_medians()
        lm, ls = model.hyper_synthesis(torch.round(model.h_a(y) - med) + med)
        y_hats, mus = [], []
        for i, y_i in enumerate(y.chunk(S, 1)):
            mu, scale, support = model.slice_params(i, lm, ls, y_hats)
            q = torch.round(y_i - mu) + mu
            y_hats.append(q + model.slice_lrp(i, support, q))
            mus.append(mu)
    assert torch.allclose(torch.cat(mus, 1), out["para"]["means"], atol=1e-5)
    assert torch.allclose(model.g_s(torch.cat(y_hats, 1)), out["x_hat"], atol=1e-5)


def test_vss_models_route_every_scan_through_the_swappable_op(monkeypatch):
    calls = []
    real = ss2d.selective_scan_2d
    monkeypatch.setattr(ss2d, "selective_scan_2d", lambda *a: calls.append(1) or real(*a))
    model = create_model("ssmic", "tiny")
    n_blocks = sum(1 for m in model.modules() if isinstance(m, ss2d.SS2D))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert n_blocks > 0 and len(calls) == n_blocks


def test_tiny_ssmic_forward_is_fast_on_cpu():
    model = create_model("ssmic", "tiny").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        t = time.process_time()
        model(x)
        cpu = time.process_time() - t
    assert cpu < 1.5, f"tiny SSMIC forward took {cpu:.2f} s of CPU"  # ~0.3 s on an idle core


def test_cli_lists_every_arch_and_preset(monkeypatch, capsys):
    import train.models.__main__ as cli

    tiny_only = {
        a: dataclasses.replace(s, presets={"tiny": s.presets["tiny"]}, default_preset="tiny", qualities={})
        for a, s in ARCHS.items()
    }
    monkeypatch.setattr(cli, "ARCHS", tiny_only)
    monkeypatch.setattr("train.models.ARCHS", tiny_only)
    assert cli.main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["arch"], r["preset"]) for r in rows} == {(a, "tiny") for a in ARCHS}
    for r in rows:
        assert r["params"] == count_parameters(create_model(r["arch"], "tiny")) and r["params_m"] > 0
    assert cli.main([]) == 0
    assert "ssmic" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert "Examples:" in capsys.readouterr().out


def test_codable_model_is_seeded_and_codes_real_symbols():
    """Random weights nudged for coding tests: same seed same weights, non-zero symbols, σ spread over the table."""
    import torch

    from train.models.seeded import SIGMA_RANGE, codable_model

    a, b = codable_model("bmshj2018-hyperprior", preset="tiny"), codable_model("bmshj2018-hyperprior", preset="tiny")
    c = codable_model("bmshj2018-hyperprior", preset="tiny", seed=1)
    sa, sc = a.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], b.state_dict()[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = a.g_a(x)
        sigma = a.h_s(a.entropy_bottleneck(a.h_a(torch.abs(y)))[0])
    assert (torch.round(y) != 0).float().mean() > 0.2
    assert sigma.min() < 1.0 < 4.0 < sigma.max() and not a.training
    bias = [m for m in a.h_s.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)][-1].bias
    assert SIGMA_RANGE[0] <= float(bias.min()) and float(bias.max()) <= SIGMA_RANGE[1]
