"""BD-rate over the bjontegaard package: known shifts give known figures; unusable curves give clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bdrate

RATE = [0.10, 0.20, 0.40, 0.80, 1.60]
PSNR = [28.0, 30.5, 33.0, 35.6, 38.1]


@pytest.mark.parametrize("method", ["akima", "pchip"])
def test_same_quality_at_ninety_percent_rate_is_minus_ten_percent(method):
    assert bdrate.bd_rate(RATE, PSNR, [r * 0.9 for r in RATE], PSNR, method) == pytest.approx(-10.0, abs=1e-6)
    assert bdrate.bd_rate(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)


def test_tiny_psnr_offset_gives_tiny_bd_rate_and_order_does_not_matter():
    test_psnr = [p + 1e-4 for p in PSNR]
    v = bdrate.bd_rate(RATE[::-1], PSNR[::-1], RATE, test_psnr)
    assert -0.01 < v < 0
    assert bdrate.bd_psnr(RATE, PSNR, RATE, test_psnr) == pytest.approx(1e-4, rel=1e-3)


def test_unusable_curves_raise_bdrateerror():
    with pytest.raises(bdrate.BDRateError, match=">= 4"):
        bdrate.bd_rate(RATE[:3], PSNR[:3], RATE[:3], PSNR[:3])
    with pytest.raises(bdrate.BDRateError, match="same quality"):
        bdrate.bd_rate(RATE, [28, 31, 31, 35, 38], RATE, PSNR)
    with pytest.raises(bdrate.BDRateError, match="overlap"):
        bdrate.bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR])
    with pytest.raises(bdrate.BDRateError, match="method"):
        bdrate.bd_rate(RATE, PSNR, RATE, PSNR, "linear-ish")


def test_summary_on_compressai_layout_flags_low_overlap():
    a = {"name": "a", "results": {"bpp": RATE, "psnr-rgb": PSNR}}
    b = {"name": "b", "results": {"bpp": RATE, "psnr-rgb": list(np.array(PSNR) + 6)}}
    s = bdrate.bd_summary(a, b)
    assert s["bd_rate_akima"] < 0 and s["bd_rate_pchip"] < 0
    assert s["low_overlap"] and 0 < s["overlap"] < 0.75


def test_non_monotone_points_still_give_a_parity_figure_and_are_flagged():
    """Seconds-trained models: rate follows λ, quality is noisy. Same points coded twice -> ~0, flagged."""
    rate, q = [0.20, 0.24, 0.26, 0.27], [16.56, 16.50, 17.04, 17.22]
    assert not bdrate.is_monotone(rate, q) and bdrate.is_monotone(RATE, PSNR)
    assert bdrate.bd_rate(rate, q, rate, [v + 1e-5 for v in q]) == pytest.approx(0.0, abs=0.01)
    s = bdrate.bd_summary(
        {"name": "a", "results": {"bpp": rate, "psnr-rgb": q}}, {"name": "b", "results": {"bpp": rate, "psnr-rgb": q}}
    )
    assert s["monotone"] is False and s["bd_rate_akima"] == pytest.approx(0.0, abs=1e-9)
