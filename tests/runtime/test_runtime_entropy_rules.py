"""The runtime's numpy symbol/index rules are CompressAI's, bit for bit (no torch in the runtime core)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from compressai.entropy_models import GaussianConditional  # noqa: E402

from runtime.plans._entropy import build_indexes, channel_indexes, from_symbols, to_symbols  # noqa: E402


def _gc():
    from compressai.models.google import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table(), force=True)
    return gc


def test_build_indexes_equals_compressai_including_bounds_ties_and_nan():
    gc = _gc()
    table = gc.scale_table.numpy().astype(np.float32)
    rng = np.random.default_rng(0)
    s = np.exp(rng.uniform(np.log(0.01), np.log(400), 20000)).astype(np.float32)
    # exact table entries, their float neighbours, the bound, below-bound, zeros, negatives, inf, nan
    ties = np.concatenate([table, np.nextafter(table, 0), np.nextafter(table, np.inf)]).astype(np.float32)
    special = np.array([0.11, 0.10999, 0.0, -1.0, np.inf, np.nan, 1e30], np.float32)
    s = np.concatenate([s, ties, special]).reshape(1, -1, 1, 1)
    ref = gc.build_indexes(torch.from_numpy(s)).numpy()
    got = build_indexes(s, table, gc.lower_bound_scale.bound.item())
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref)


def test_symbols_round_half_to_even_like_compressai_quantize():
    gc = _gc()
    y = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, 3.7, -3.2], np.float32).reshape(1, 2, 2, 2)
    mu = np.array([0.0, 0.25, -0.25, 1.0, 0.5, 0.0, 0.1, -0.2], np.float32).reshape(1, 2, 2, 2)
    ref = gc.quantize(torch.from_numpy(y), "symbols", torch.from_numpy(mu)).numpy()
    np.testing.assert_array_equal(to_symbols(y, mu), ref)
    ref_hat = gc.dequantize(torch.from_numpy(ref), torch.from_numpy(mu)).numpy()
    np.testing.assert_array_equal(from_symbols(to_symbols(y, mu), mu), ref_hat)


def test_channel_indexes_are_compressai_entropy_bottleneck_indexes():
    from compressai.entropy_models import EntropyBottleneck

    eb = EntropyBottleneck(5)
    ref = eb._build_indexes((2, 5, 3, 4)).numpy()
    np.testing.assert_array_equal(channel_indexes((2, 5, 3, 4)), ref)


def test_non_finite_latent_is_refused():
    with pytest.raises(ValueError):
        to_symbols(np.array([np.nan], np.float32), None)
