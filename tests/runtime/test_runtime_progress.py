"""Progress inside one image: ``Codec.encode/decode(progress=)`` reports every graph call of the plan (each
wavefront step of a spatial-context plan), monotone and reaching its total, and changes nothing in the result;
the CLI shows it as a bar on stderr for a long single-file run, and ``-q`` prints nothing on stderr. (Its cost,
one Python call per graph call, is measured as a ratio of decode times, not asserted: the machine is shared.)"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from test_runtime_support import cached_bundle, record_progress, test_image

ARCHS = ["bmshj2018-hyperprior", "mbt2018"]  # hyperprior (fixed graph calls) and spatial_context (a loop)


@pytest.mark.parametrize("arch", ARCHS)
def test_progress_counts_every_graph_call_up_to_the_total(arch, tmp_path_factory):
    pytest.importorskip("torch")
    from runtime import Codec
    from runtime.plans.spatial_context import schedule

    _, b, _ = cached_bundle(tmp_path_factory, arch)
    codec = Codec.open(b, backend="onnxruntime", threads=1)
    im = test_image(72, 100)
    data, enc = record_progress(lambda cb: codec.encode(im, progress=cb))
    assert enc[-1][0] == codec.last_stats["network_calls"]
    out, dec = record_progress(lambda cb: codec.decode(data, progress=cb))
    assert dec[-1][0] == codec.last_stats["network_calls"]
    assert np.array_equal(out, codec.decode(data))  # the callback changes nothing
    if arch == "mbt2018":  # one step per wavefront step, announced once the latent size is known
        h, w = 128 // 16, 128 // 16  # 72x100 padded to 128x128 (pad multiple 64)
        assert dec[-1][1] == 2 + len(schedule(h, w)) and len(schedule(h, w)) > 20


def test_cli_shows_step_progress_for_a_long_run_and_q_silences_it(tmp_path, tmp_path_factory, capsys, monkeypatch):
    pytest.importorskip("torch")
    import runtime.__main__ as cli
    from runtime import cli as conventions
    from runtime.image import save

    _, b, _ = cached_bundle(tmp_path_factory, "mbt2018")
    save(tmp_path / "x.png", test_image(72, 100))
    # every run counts as long here (the bar's delay is one second)
    monkeypatch.setattr(cli, "step_progress", functools.partial(conventions.step_progress, delay=0.0))
    args = ["--backend", "onnxruntime"]
    assert cli.main(["encode", str(b), str(tmp_path / "x.png"), "-o", str(tmp_path / "x.lic"), *args]) == 0
    err = capsys.readouterr().err
    assert "encode x.png" in err and "step" in err
    assert cli.main(["decode", str(b), str(tmp_path / "x.lic"), "-o", str(tmp_path / "y.png"), *args, "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith(str(tmp_path / "y.png"))
    assert cli.main(["decode", str(b), str(tmp_path / "x.lic"), "-o", str(tmp_path / "z.png"), *args]) == 0
    assert "decode x.lic" in capsys.readouterr().err
