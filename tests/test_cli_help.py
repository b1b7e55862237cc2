"""Every lictrt command line: ``--help`` shows examples and shell completion, and the exit codes of
runtime/cli.py hold (0 ok, 1 error, 2 usage)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

CLIS = ["runtime.__main__", "train.cli", "train.models.__main__", "export.onnx", "export.trt", "benchmarks.__main__"]


@pytest.mark.parametrize("module", CLIS)
def test_help_shows_examples_and_completion(module, capsys):
    pytest.importorskip("torch")
    main = importlib.import_module(module).main
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    print(out)  # the help text, as users see it, in the test log
    assert "Usage: python -m " in out and "--install-completion" in out
    if module not in ("runtime.__main__", "benchmarks.__main__"):  # apps with subcommands: examples per command
        assert "Examples:" in out


def test_benchmarks_without_a_command_prints_help_and_fails(capsys):
    from benchmarks.__main__ import COMMANDS, main

    assert main([]) == 2
    text = capsys.readouterr()
    assert all(name in text.out + text.err for name in COMMANDS)
    assert main(["no-such-command"]) == 2


def _benchmark_commands():
    from benchmarks.__main__ import COMMANDS

    return list(COMMANDS)


@pytest.mark.parametrize("name", _benchmark_commands())
def test_every_benchmark_command_is_a_typer_command_with_examples(name, capsys):
    """``python -m benchmarks NAME --help``: Typer's usage line, the command's own options, its examples; no
    argparse left behind the dispatcher; an unknown option is a usage error (2) in Typer's words."""
    import benchmarks.__main__ as bm

    assert bm.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out.startswith(f"Usage: python -m benchmarks {name} [OPTIONS]"), out[:200]
    assert "Examples:" in out and f"python -m benchmarks {name}" in out.split("Examples:")[1]
    assert "--verbose" in out and "-h, --help" in out
    module = importlib.import_module(f"benchmarks.{name.replace('-', '_')}")
    assert "import argparse" not in Path(module.__file__).read_text()
    assert bm.main([name, "--no-such-option"]) == 2
    assert "No such option: --no-such-option" in capsys.readouterr().err
    assert module.main(["--help"]) == 0  # the module's own entry point runs the same command


def test_export_exit_codes(tmp_path, capsys):
    pytest.importorskip("torch")
    from export.onnx import main

    assert main([str(tmp_path / "missing.pth")]) == 1  # the work failed
    assert capsys.readouterr().err.startswith("error: checkpoint not found")
    assert main([str(tmp_path / "missing.pth"), "--size", "64x64", "--dynamic"]) == 2  # usage
    assert main([]) == 2
    from export.trt import main as trt_main

    assert trt_main([str(tmp_path / "nope")]) == 1
    assert trt_main(["--precision", "fp8", str(tmp_path)]) == 2


def test_shell_completion_completes_subcommands_of_the_console_script():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, _LICTRT_RUNTIME_COMPLETE="complete_bash", COMP_WORDS="lictrt-runtime enc", COMP_CWORD="1")
    code = "import sys; sys.argv[0] = 'lictrt-runtime'; from runtime.__main__ import main; sys.exit(main())"
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert r.returncode == 0 and r.stdout.split() == ["encode"], r.stdout + r.stderr
