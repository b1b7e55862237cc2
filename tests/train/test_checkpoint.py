"""train/checkpoint.py: the lictrt checkpoint format, bare state_dicts, and one-line errors for bad files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from train.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    has_cdf_tables,
    infer_config,
    load_checkpoint,
    save_checkpoint,
)
from train.cli import main
from train.models import create_model

ARCH = "bmshj2018-hyperprior"
CDF_KEYS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0, preset="tiny", arch=ARCH):
    torch.manual_seed(seed)
    return create_model(arch, preset=preset)


def _forward(model, seed=1, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g)
    model.eval()
    with torch.no_grad():
        return model(x)


def _same_output(a, b):
    return torch.equal(a["x_hat"], b["x_hat"]) and all(
        torch.equal(a["likelihoods"][k], b["likelihoods"][k]) for k in a["likelihoods"]
    )


class _Exploit:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_saved_file_is_the_documented_dict_and_loads_with_weights_only(tmp_path):
    path = save_checkpoint(
        tmp_path / "m.pth",
        _model(),
        lmbda=0.0067,
        metric="mse",
        step=12,
        epoch=3,
        stats={"bpp": 0.5, "psnr": 30.0, "loss": 1.0},
    )
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION == 1
    assert raw["arch"] == ARCH and raw["config"] == {"N": 16, "M": 24}
    assert raw["lambda"] == 0.0067 and raw["metric"] == "mse" and (raw["step"], raw["epoch"]) == (12, 3)
    assert raw["stats"]["psnr"] == 30.0
    assert set(raw["versions"]) == {"torch", "compressai", "lictrt"}
    assert raw["state_dict"]["entropy_bottleneck._quantized_cdf"].numel() > 0  # saved after update(force=True)
    assert raw["state_dict"]["gaussian_conditional.scale_table"].numel() == 64
    assert create_model(raw["arch"], **raw["config"]).state_dict().keys() == raw["state_dict"].keys()
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temporary file left behind


def test_reload_reproduces_forward_bit_for_bit_and_needs_no_update(tmp_path):
    model = _model(seed=3)
    with torch.no_grad():  # move away from the init so a silent re-init would show
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "m.pth", model, lmbda=0.01, metric="mse", step=0, epoch=0, stats={})
    loaded, meta = load_checkpoint(path)
    assert meta["source"] == "lictrt" and not loaded.training
    assert has_cdf_tables(loaded)
    assert loaded.update() is False  # CDF tables came from the file: nothing to (re)compute
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert _same_output(_forward(model), _forward(loaded))
    x = torch.rand(1, 3, 64, 64)
    out = loaded.compress(x)  # a real bitstream straight after loading
    rec = loaded.decompress(out["strings"], out["shape"])
    assert rec["x_hat"].shape == x.shape


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.pth", _model(), lmbda=0.01, metric="mse", step=1, epoch=0, stats={})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="plain values"):
        save_checkpoint(path, _model(), lmbda=0.01, metric="mse", step=2, epoch=0, stats={"bad": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]


def test_bare_state_dict_loads_when_arch_is_named_and_infers_the_preset(tmp_path):
    model = _model(preset="q1")  # N=128, M=192: a CompressAI zoo layout
    model.update(force=True)
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    loaded, meta = load_checkpoint(tmp_path / "bare.pth", arch=ARCH)
    assert meta["source"] == "state_dict" and meta["config"] == {"N": 128, "M": 192}
    assert loaded.update() is False
    assert _same_output(_forward(model), _forward(loaded))
    with pytest.raises(CheckpointError, match="bare state_dict; name its architecture"):
        load_checkpoint(tmp_path / "bare.pth")


def test_seed_style_training_dict_without_cdf_tables_loads_and_rebuilds_them(tmp_path):
    model = _model()
    state = {"module." + k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] not in CDF_KEYS}
    torch.save({"epoch": 7, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "seed.pth")
    loaded, meta = load_checkpoint(tmp_path / "seed.pth", arch=ARCH, preset="tiny")
    assert meta["cdf_rebuilt"] is True and meta["epoch"] == 7
    assert has_cdf_tables(loaded)
    assert _same_output(_forward(model), _forward(loaded))


def test_infer_config_tells_presets_apart_by_shape():
    assert infer_config(ARCH, _model(preset="q6").state_dict()) == {"N": 192, "M": 320}
    assert infer_config(ARCH, _model(preset="tiny").state_dict()) == {"N": 16, "M": 24}


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "checkpoint not found"),
        ("directory", "not a file"),
        ("garbage", "corrupt or not a torch checkpoint"),
        ("truncated", "truncated"),
        ("empty", "truncated or empty"),
        ("not_a_dict", "not a checkpoint"),
        ("tensor_dict_of_junk", "does not fit 'bmshj2018-hyperprior'"),
        ("other_arch_state_dict", "does not fit 'bmshj2018-hyperprior'"),
        ("other_arch_checkpoint", "holds a 'mbt2018-mean' model, not 'bmshj2018-hyperprior'"),
        ("future_version", "unsupported lictrt-checkpoint version"),
        ("unknown_arch_in_file", "unknown architecture 'nope'"),
    ],
)
def test_bad_files_raise_one_line_checkpoint_errors(tmp_path, case, pattern):
    path = tmp_path / "c.pth"
    good = save_checkpoint(tmp_path / "good.pth", _model(), lmbda=0.01, metric="mse", step=0, epoch=0, stats={})
    if case == "directory":
        path = tmp_path
    elif case == "garbage":
        path.write_bytes(os.urandom(4096))
    elif case == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "not_a_dict":
        torch.save([torch.zeros(3)], path)
    elif case == "tensor_dict_of_junk":
        torch.save({"weight": torch.zeros(3)}, path)
    elif case == "other_arch_state_dict":
        torch.save(_model(arch="mbt2018").state_dict(), path)
    elif case == "other_arch_checkpoint":
        save_checkpoint(path, _model(arch="mbt2018-mean"), lmbda=0.01, metric="mse", step=0, epoch=0, stats={})
    elif case in ("future_version", "unknown_arch_in_file"):
        raw = torch.load(good, weights_only=True)
        raw.update(format_version=2) if case == "future_version" else raw.update(arch="nope")
        torch.save(raw, path)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_checkpoint(path, arch=ARCH)
    assert "\n" not in str(err.value)


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": _Exploit(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"refusing to load .*\(posix\.system\).*may be malicious"):
        load_checkpoint(tmp_path / "evil.pth", arch=ARCH)
    assert not marker.exists()


def test_cli_reports_each_bad_checkpoint_in_one_line_with_nonzero_exit(tmp_path, capsys):
    torch.save({"x": _Exploit(tmp_path / "pwned")}, tmp_path / "evil.pth")
    (tmp_path / "garbage.pth").write_bytes(os.urandom(1000))
    torch.save(_model(arch="mbt2018").state_dict(), tmp_path / "other.pth")
    cases = {
        "evil.pth": "may be malicious",
        "garbage.pth": "corrupt",
        "nothere.pth": "not found",
        "other.pth": "does not fit",
    }
    for name, words in cases.items():
        rc = main(["--info", str(tmp_path / name), "-a", ARCH])
        err = capsys.readouterr().err
        assert rc != 0, name
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, (name, err)
    assert main(["--info", str(tmp_path / "other.pth"), "-a", "mbt2018"]) == 0  # right arch: loads
    assert "mbt2018" in capsys.readouterr().out


def test_cli_process_exits_nonzero_with_one_line_and_no_traceback(tmp_path, repo_root):
    torch.save({"x": _Exploit(tmp_path / "pwned")}, tmp_path / "evil.pth")
    cmd = [
        sys.executable,
        "-m",
        "train",
        "-a",
        ARCH,
        "-d",
        str(tmp_path),
        "--steps",
        "1",
        "-o",
        str(tmp_path / "out.pth"),
        "--resume",
        str(tmp_path / "evil.pth"),
    ]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "may be malicious" in proc.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out.pth").exists()
    with pytest.raises(CheckpointError):  # --verbose lets the exception (and its traceback) through
        main(["--info", str(tmp_path / "evil.pth"), "--verbose"])


def test_shared_fixture_checkpoints_load(make_checkpoint):
    path = make_checkpoint("bmshj2018-hyperprior", "tiny", seed=0)
    assert make_checkpoint("bmshj2018-hyperprior", "tiny", seed=0) == path  # cached per session
    model, meta = load_checkpoint(path)
    assert meta["arch"] == "bmshj2018-hyperprior" and has_cdf_tables(model)


def test_a_flipped_byte_inside_a_tensor_is_detected(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pth", model, lmbda=0.01, metric="mse", step=0, epoch=0)
    assert torch.load(path, weights_only=True)["digest"].startswith("sha256:")
    load_checkpoint(path)  # intact: loads
    name, t = max(model.state_dict().items(), key=lambda kv: kv[1].numel())
    raw = t.detach().contiguous().view(torch.uint8).numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(raw)
    assert at > 0, "tensor bytes not stored verbatim"
    data[at + len(raw) // 2] ^= 0x10
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(data))
    assert not torch.equal(torch.load(bad, weights_only=True)["state_dict"][name], t)  # torch itself notices nothing
    with pytest.raises(CheckpointError, match="corrupt: its tensors do not match the digest"):
        load_checkpoint(bad)


def test_bare_state_dicts_and_digestless_checkpoints_load_as_before(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "c.pth", model, lmbda=0.01, metric="mse", step=0, epoch=0)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["digest"]
    torch.save(ckpt, tmp_path / "old.pth")
    load_checkpoint(tmp_path / "old.pth")
    torch.save(ckpt["state_dict"], tmp_path / "bare.pth")
    load_checkpoint(tmp_path / "bare.pth", ARCH)
