"""Plan ``grouped_slices`` (GIT-SSIC): channel slices coded one stream per (group, slice), so a decoder can
reconstruct any subset of the image's groups.

The group mask (integer labels) lives on a coarse grid of ``mask_grid`` = 32-pixel cells of the padded image
(the seed's ``ss_block_size``). Streams:

- ``mask``: the grid's labels + 1 in raster order, coded with the fixed ``mask`` table (the seed's CDF
  2·(Φ(k/16) − ½); labels past the table go through the coder's bypass); absent when the image was coded
  without a mask (one group, 0: the seed's "woStructure" mode, which codes no mask either);
- ``z``: the hyper latent (factorized prior, as ``hyperprior``);
- ``g<label>.y<i>``: slice i's symbols round(y − μ) at that group's latent cells, in (channel, row, column)
  order, with table index = the **nearest** scale of ``y.scale_table`` to σ (:func:`nearest_indexes`).

Graphs: ``analysis`` (x, mask) → y, z; ``hyper_synthesis`` z_hat → hyper (parse-critical); ``slice<i>``
(hyper, y_hat_0 … y_hat_{i−1}) → mu, scale (parse-critical, pointwise, so a group's μ and σ never depend on
other groups); ``synthesis`` (y_hat, mask) → x_hat. ``mask`` is the latent-resolution label map
([1, 1, H/16, W/16] float32). Decoding a subset: only the listed groups' streams are read, ŷ is zero at every
other cell, and synthesis runs with the full mask.
"""

from __future__ import annotations

import numpy as np

from ..errors import BitstreamError, GroupError
from ._entropy import from_symbols, to_symbols
from .hyperprior import code_z, decode_z

MASK_GRID = 32  # pixels per mask cell
LATENT_STRIDE = 16  # pixels per latent cell


def nearest_indexes(scales: np.ndarray, scale_table: np.ndarray) -> np.ndarray:
    """Index of the nearest table scale to each σ, σ first clamped to the table's range (float32; the first
    index on ties): ``argmin_k |σ − s_k|``, the same arithmetic as ``train.models.gitssic.nearest_scale_indexes``."""
    t = np.asarray(scale_table, np.float32)
    s = np.clip(np.asarray(scales, np.float32), t[0], t[-1])
    return np.abs(s[..., None] - t).argmin(axis=-1).astype(np.int32)


def mask_grid(plan: dict) -> int:
    return int(plan.get("mask_grid", MASK_GRID))


def coarse_mask(mask, image_hw: tuple[int, int], multiple: int, grid: int = MASK_GRID) -> np.ndarray:
    """A user's label map → int32 labels on the ``grid``-pixel cells of the padded image.

    ``mask`` (labels, or None: one group 0) covers the unpadded h×w image at full, latent (1/16) or grid
    (1/``grid``) resolution. It is repeated to full resolution, padded like the image (label 0), and each
    cell takes the label of its top-left pixel (nearest downsampling, as the seed does)."""
    from ..image import padding

    h, w = image_hw
    top, bottom, left, right = padding(h, w, multiple)
    H, W = h + top + bottom, w + left + right
    if mask is None:
        return np.zeros((H // grid, W // grid), np.int32)
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] in (1, 3, 4):  # a PNG read as H×W×C: labels in the first channel
        m = m[..., 0]
    if m.ndim != 2 or m.dtype.kind not in "iub":
        raise ValueError(f"the group mask must be a 2-D integer label map, got {m.dtype} {m.shape}")
    for f in (1, LATENT_STRIDE, grid):
        if m.shape == (-(-h // f), -(-w // f)):
            break
    else:
        raise ValueError(
            f"the group mask is {m.shape[1]}x{m.shape[0]}; for a {w}x{h} image it must be "
            f"{w}x{h}, {-(-w // LATENT_STRIDE)}x{-(-h // LATENT_STRIDE)} or "
            f"{-(-w // grid)}x{-(-h // grid)} (image, 1/{LATENT_STRIDE} or 1/{grid} size)"
        )
    if m.size and (int(m.min()) < 0 or int(m.max()) >= 2**16):
        raise ValueError("group labels must be in [0, 65535]")
    full = np.repeat(np.repeat(m.astype(np.int32), f, 0), f, 1)[:h, :w]
    full = np.pad(full, ((top, bottom), (left, right)))
    return np.ascontiguousarray(full[::grid, ::grid])


def latent_mask(coarse: np.ndarray, grid: int = MASK_GRID) -> np.ndarray:
    """The grid labels repeated to latent resolution: float32 [1, 1, H/16, W/16] (the graphs' ``mask`` input)."""
    r = grid // LATENT_STRIDE
    return np.ascontiguousarray(np.repeat(np.repeat(coarse, r, 0), r, 1)[None, None].astype(np.float32))


def stream_name(group: int, i: int) -> str:
    return f"g{group}.y{i}"


def num_slices(ctx) -> int:
    names = {n[len(ctx.prefix) :] for n in ctx.bundle.manifest["graphs"] if n.startswith(ctx.prefix)}
    n = 0
    while f"slice{n}" in names:
        n += 1
    if n == 0:
        raise ValueError("plan grouped_slices: the bundle needs graphs slice0..sliceN-1")
    return n


def _slice_feeds(i: int, hyper: np.ndarray, hats: list) -> dict:
    return {"hyper": hyper, **{f"y_hat_{j}": hats[j] for j in range(i)}}


def _cells(labels_latent: np.ndarray, group: int, channels: int) -> np.ndarray:
    """Boolean [1, C, h, w] selector of one group's latent cells (every channel)."""
    return np.broadcast_to(labels_latent == group, (1, channels) + labels_latent.shape[-2:])


def encode(ctx, x):
    H, W = x.shape[-2:]
    grid = mask_grid(ctx.bundle.plan)
    coarse = coarse_mask(getattr(ctx, "mask", None), getattr(ctx, "image_hw", (H, W)), ctx.bundle.pad_multiple, grid)
    if getattr(ctx, "mask", None) is not None:  # without a mask: one group, no mask stream ("woStructure")
        ctx.encode("mask", "mask", coarse + 1, np.zeros(coarse.shape, np.int32))
    lat = latent_mask(coarse, grid)
    n = num_slices(ctx)
    ctx.expect(2 + n)  # analysis, hyper_synthesis, one slice<i> per slice
    a = ctx.run("analysis", x=x, mask=lat)
    z_hat = code_z(ctx, a["z"])
    hyper = ctx.run("hyper_synthesis", z_hat=z_hat)["hyper"]
    y = a["y"]
    if y.shape[1] % n:
        raise ValueError(f"y with {y.shape[1]} channels does not split into {n} slices")
    c = y.shape[1] // n
    groups = [int(g) for g in np.unique(coarse)]
    t = ctx.tables("y")
    hats: list[np.ndarray] = []
    for i in range(n):
        p = ctx.run(f"slice{i}", **_slice_feeds(i, hyper, hats))
        mu = p["mu"]
        q = to_symbols(y[:, i * c : (i + 1) * c], mu)
        idx = nearest_indexes(p["scale"], t.scale_table)
        for g in groups:
            sel = _cells(lat[0, 0], g, c)
            ctx.encode(stream_name(g, i), "y", q[sel], idx[sel])
        hats.append(from_symbols(q, mu))
        ctx.stats.sequential_steps += 1


def decode(ctx, padded_hw):
    grid = mask_grid(ctx.bundle.plan)
    cells = (padded_hw[0] // grid, padded_hw[1] // grid)
    if "mask" in ctx.in_streams:
        coarse = ctx.decode("mask", "mask", np.zeros(cells, np.int32)) - 1
    else:  # coded without a mask: the whole image is group 0
        coarse = np.zeros(cells, np.int32)
    if coarse.size and int(coarse.min()) < 0:
        raise BitstreamError("stream 'mask' holds a negative group label")
    present = [int(g) for g in np.unique(coarse)]
    wanted = getattr(ctx, "groups", None)
    wanted = present if wanted is None else sorted({int(g) for g in wanted})
    unknown = [g for g in wanted if g not in present]
    if unknown:
        raise GroupError(
            f"group(s) {', '.join(map(str, unknown))} are not in this bitstream (it has {', '.join(map(str, present))})"
        )
    lat = latent_mask(coarse, grid)
    n = num_slices(ctx)
    ctx.expect(2 + n)  # hyper_synthesis, one slice<i> per slice, synthesis
    z_hat = decode_z(ctx, padded_hw)
    hyper = ctx.run("hyper_synthesis", z_hat=z_hat)["hyper"]
    t = ctx.tables("y")
    hats: list[np.ndarray] = []
    for i in range(n):
        p = ctx.run(f"slice{i}", **_slice_feeds(i, hyper, hats))
        mu = p["mu"]
        idx = nearest_indexes(p["scale"], t.scale_table)
        y_hat = np.zeros(mu.shape, np.float32)
        for g in wanted:
            sel = _cells(lat[0, 0], g, mu.shape[1])
            y_hat[sel] = from_symbols(ctx.decode(stream_name(g, i), "y", idx[sel]), mu[sel])
        hats.append(y_hat)
        ctx.stats.sequential_steps += 1
    ctx.groups_decoded = wanted
    return ctx.run("synthesis", y_hat=np.ascontiguousarray(np.concatenate(hats, axis=1)), mask=lat)["x_hat"]
