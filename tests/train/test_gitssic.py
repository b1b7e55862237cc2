"""GIT-SSIC (train/models/gitssic.py, train/layers/group_swin.py): the paper sizes, the seed's names, the
group-masked attention (and its shifted-window collision quirk), per-group streams and subset decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from train.layers.group_swin import GroupBasicLayer
from train.models import count_parameters, create_model
from train.models.gitssic import (
    connected_components,
    fit_quantiles,
    nearest_scale_indexes,
    random_box_masks,
    state_dict_from_seed,
)

torch.set_num_threads(1)
SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_params" / "gitssic.json"


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return create_model("gitssic", "paper")


def test_paper_parameter_counts_equal_the_seed(paper):
    m = paper
    assert _n(m.g_a) == 7_123_656 and _n(m.g_s) == 7_125_076
    assert _n(m.h_a) == 2_396_736 and _n(m.h_s) == 2_950_144
    assert _n(m.char_m_means) + _n(m.char_m_scales) == 3_597_440
    assert _n(m.entropy_bottleneck) == 8_256 + 576  # DeepFactorized (3,3,3) 43/ch + CompressAI's quantiles
    assert count_parameters(m) == 23_201_308 + 576
    assert [_n(m.char_m_means[i]) for i in (0, 9)] == [133_792, 133_792 + 9 * 10_240]


def test_seed_state_dict_loads_strictly_through_the_name_map(paper, tmp_path):
    seed = json.loads(SEED.read_text())
    g = torch.Generator().manual_seed(0)
    sd = {n: torch.randn(s, generator=g) * 0.1 for n, s in seed["parameters"].items()}
    sd.update({n: torch.zeros(s, dtype=torch.int64) for n, s in seed["buffers"].items()})
    mapped = state_dict_from_seed(sd)
    missing, unexpected = nn.Module.load_state_dict(paper, mapped, strict=False)
    assert unexpected == []
    assert all(k.rsplit(".", 1)[-1] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table") for k in missing)
    assert torch.equal(paper.g_s.pe[3].proj.m[0].weight, sd["g_s_pe.3.proj.m.0.weight"])
    assert torch.equal(paper.entropy_bottleneck.matrices[1], sd["z_em._prior._base.matrices.1"][0])
    assert torch.equal(paper.h_s[4].bias, sd["h_s_m.4.bias"])
    # the quantiles nobody trained are solved from the prior: logit CDF = -t, 0, t there
    eb = paper.entropy_bottleneck
    logits = eb._logits_cumulative(eb.quantiles, stop_gradient=True)
    t = torch.log(torch.tensor(2 / eb.tail_mass - 1))
    assert torch.allclose(logits, torch.stack([-t, torch.tensor(0.0), t]).expand_as(logits), atol=1e-3)
    # the real path: a bare seed checkpoint ({"parameters": ...}) read by train.checkpoint with -a gitssic
    from train.checkpoint import load_checkpoint

    torch.save({"parameters": sd}, tmp_path / "seed.pth")
    model, meta = load_checkpoint(tmp_path / "seed.pth", arch="gitssic")
    assert meta["cdf_rebuilt"] and model.lictrt_config["dims"] == [128, 192, 256, 320]
    with pytest.raises(ValueError, match="no GIT-SSIC counterpart"):
        state_dict_from_seed({**sd, "bogus.weight": torch.zeros(1)})


def test_fit_quantiles_matches_compressai_aux_optimum():
    from compressai.entropy_models import EntropyBottleneck

    eb = EntropyBottleneck(3, filters=(3, 3, 3))
    q = fit_quantiles(eb)
    eb.quantiles.data.copy_(q)
    assert float(eb.loss().detach()) < 1e-3  # the aux loss CompressAI minimizes


def test_group_attention_keeps_groups_apart_except_the_seed_collision():
    """W-MSA/SW-MSA: a token never attends to another group -- unless region + label collide in a
    wrap-around window (region 4 = bottom-right corner, region 5 = bottom rows at the left edge)."""
    torch.manual_seed(0)
    layer = GroupBasicLayer(8, 2, 2, window_size=4).eval()
    H = W = 8

    def mask_with(corner_label):
        m = torch.zeros(1, 1, H, W, dtype=torch.int64)
        m[..., 6:, 6:] = corner_label  # rolled by -2: lands in region 4 of the last shifted window
        return m

    x = torch.randn(1, 8, H, W)
    x2 = x.clone()
    # group-0 tokens in region 5 (bottom rows, left edge) of the same wrap window
    x2[..., 6:, 0:2] += 3 * torch.randn(1, 8, 2, 2)
    x3 = x.clone()
    x3[..., 0:2, 0:2] += 3 * torch.randn(1, 8, 2, 2)  # group-0 tokens elsewhere
    with torch.no_grad():
        for label, leaks in ((1, True), (9, False)):
            m = mask_with(label)
            base, moved, far = layer(x, m), layer(x2, m), layer(x3, m)
            corner = (slice(None), slice(None), slice(6, 8), slice(6, 8))
            assert torch.allclose(base[corner], far[corner], atol=1e-6)
            assert (not torch.allclose(base[corner], moved[corner], atol=1e-4)) == leaks
            assert layer.colliding_labels(m, H, W) == ({0, label} if leaks else set())


def test_nearest_scale_index_rule():
    table = torch.tensor([0.11, 0.2, 0.5, 1.0])
    s = torch.tensor([0.0, 0.11, 0.15, 0.16, 0.3, 0.36, 0.9, 5.0, float("nan")])
    got = nearest_scale_indexes(s, table).tolist()
    assert got[:8] == [0, 0, 0, 1, 1, 2, 3, 3]


def test_random_box_masks_are_the_seeds_kind():
    g = torch.Generator().manual_seed(1)
    m = random_box_masks(64, 256, 256, generator=g)
    assert m.shape == (64, 1, 16, 16) and m.dtype == torch.int64
    zero = (m.flatten(1) == 0).all(1)
    assert 16 < int(zero.sum()) < 48  # about half the images carry no structure
    # constant on 2x2 latent cells (the 32-px grid) and labels 0..K consecutive
    assert torch.equal(m, m[..., ::2, ::2].repeat_interleave(2, -2).repeat_interleave(2, -1))
    for img in m[~zero]:
        labels = img.unique().tolist()
        assert labels == list(range(len(labels)))
    fg = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)[None]
    assert connected_components(fg)[0].tolist() == [[1, 1, 0, 2], [0, 1, 0, 2], [3, 0, 0, 0]]


def _grid_mask(labels, cell=2):
    t = torch.tensor(labels, dtype=torch.int64)
    return t.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[None, None]


@pytest.fixture(scope="module")
def tiny():
    from train.models.seeded import codable_model

    return codable_model("gitssic", "tiny")


def test_tiny_per_group_streams_and_subset_decode(tiny):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128)
    # latent 8x8; labels on the 32-px grid. Labels 0/10/20 cannot collide (|difference| > 8).
    mask = _grid_mask([[0, 0, 10, 10], [0, 20, 20, 10], [0, 20, 0, 0], [0, 0, 0, 0]])
    assert tiny.g_s.colliding_labels(mask) == set()
    with torch.no_grad():
        enc = tiny.compress(x, mask)
        assert enc["groups"] == [0, 10, 20] and len(enc["strings"]) == 3 * tiny.num_slices + 1
        full = tiny.decompress(enc["strings"], enc["shape"], mask)["x_hat"]
        ref = tiny(x, mask)["x_hat"].clamp(0, 1)
        assert (full - ref).abs().max() <= 1e-4
        for groups in ([10], [0, 20]):
            part = tiny.decompress(enc["strings"], enc["shape"], mask, groups=groups)["x_hat"]
            inside = torch.isin(mask, torch.tensor(groups)).repeat_interleave(16, -2).repeat_interleave(16, -1)
            diff = (part - full).abs().expand_as(full)
            assert diff[inside.expand_as(full)].max() <= 1e-5
            assert diff[~inside.expand_as(full)].max() > 1e-2  # the others really were not decoded
        with pytest.raises(ValueError, match="not in the mask"):
            tiny.decompress(enc["strings"], enc["shape"], mask, groups=[3])


def test_tiny_subset_decode_quirk_is_pinned(tiny):
    """With labels 0/1 in a wrap-around window the seed's SW-MSA keys collide and a subset decode differs
    from the full decode inside the decoded group; the model reports those labels."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128)
    mask = _grid_mask([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    assert tiny.g_s.colliding_labels(mask) == {0, 1}
    with torch.no_grad():
        enc = tiny.compress(x, mask)
        full = tiny.decompress(enc["strings"], enc["shape"], mask)["x_hat"]
        part = tiny.decompress(enc["strings"], enc["shape"], mask, groups=[1])["x_hat"]
    inside = (mask == 1).repeat_interleave(16, -2).repeat_interleave(16, -1).expand_as(full)
    assert (part - full).abs()[inside].max() > 1e-4


def test_training_draws_random_box_masks_through_the_trainer(tmp_path, train_dir, monkeypatch):
    """``python -m train -a gitssic``: the model draws the seed's box masks itself in training mode."""
    import train.models.gitssic as gitssic
    from train.checkpoint import load_checkpoint
    from train.trainer import TrainConfig, Trainer

    drawn = []
    real = gitssic.random_box_masks
    monkeypatch.setattr(gitssic, "random_box_masks", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    cfg = TrainConfig(
        arch="gitssic",
        preset="tiny",
        data=train_dir,
        output=tmp_path / "g.pth",
        steps=4,
        batch_size=2,
        patch_size=128,
        lr=1e-3,
        seed=0,
        max_seconds=60,
        quiet=True,
        eval_every=100,
    )
    Trainer(cfg).run()
    assert len(drawn) == 4 and all(m.shape == (2, 1, 8, 8) for m in drawn)
    _, meta = load_checkpoint(tmp_path / "g.pth")
    assert meta["arch"] == "gitssic" and meta["step"] == 4


@pytest.mark.slow
def test_paper_macs_at_kodak_size_are_the_seeds_201_gmac():
    """``python -m benchmarks macs`` on the paper model at 768x512: ≈201 GMAC (±1%), ChARM included (~2 min)."""
    from benchmarks.macs import count_model

    torch.manual_seed(0)
    res = count_model(create_model("gitssic", "paper").eval(), (512, 768), "gitssic")
    assert abs(res["total_macs"] / 201e9 - 1) <= 0.01
    g = res["graphs"]
    assert abs(g["g_a"]["total_macs"] / 96.2e9 - 1) <= 0.005 and abs(g["g_s"]["total_macs"] / 96.2e9 - 1) <= 0.005
    assert abs(sum(g[f"slice{i}"]["total_macs"] for i in range(10)) / 5.5e9 - 1) <= 0.01
