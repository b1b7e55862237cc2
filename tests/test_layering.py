"""The import layering of the packages, checked on the source (every import statement, also inside functions).

train → export → runtime → benchmarks is the data flow: a checkpoint becomes a bundle, the runtime codes with it,
benchmarks measure everything.  So:
- ``train`` imports none of the other three, except the runtime's dependency-free command-line and file
  helpers every CLI shares (``runtime.cli``: exit codes, errors, progress; ``runtime.files``: the atomic writer);
- ``export`` may use ``train`` (the models) and ``runtime`` (the bundle schema it writes against), never benchmarks;
- ``runtime`` never imports ``export`` or ``benchmarks``; its lean core imports neither torch nor ``train``: only
  the torch reference backend does.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("train", "export", "runtime", "benchmarks", "trt_plugins")
FORBIDDEN = {"train": {"export", "benchmarks"}, "export": {"benchmarks"}, "runtime": {"export", "benchmarks"}}
TORCH_SIDE_OF_RUNTIME = {"runtime/backends/torch_ref.py"}
#: modules of the lean runtime that any package may use: no torch, no numpy, nothing of the codec
SHARED = {"runtime.cli", "runtime.files", "runtime.errors"}


def imports_of(path: Path, root: Path = ROOT, skip: set[str] = frozenset()) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports resolve inside its own package);
    imports of the modules in ``skip`` (full dotted names) are left out."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names if a.name not in skip}
        elif isinstance(node, ast.ImportFrom):
            if not node.level and node.module in skip:
                continue
            out.add(path.relative_to(root).parts[0] if node.level else (node.module or "").split(".")[0])
    return out


def sources(package: str) -> list[Path]:
    """The package's Python modules (not build trees, not the C++ side's fixture scripts under ``cpp/``)."""
    return sorted(p for p in (ROOT / package).rglob("*.py") if not {"build", "cpp"} & set(p.parts))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_follow_the_data_flow(package):
    bad = {str(p.relative_to(ROOT)): sorted(imports_of(p, skip=SHARED) & FORBIDDEN[package]) for p in sources(package)}
    assert not {k: v for k, v in bad.items() if v}


def test_runtime_core_imports_neither_torch_nor_train():
    bad = {}
    for p in sources("runtime"):
        rel = str(p.relative_to(ROOT))
        if rel not in TORCH_SIDE_OF_RUNTIME and imports_of(p) & {"torch", "train", "compressai"}:
            bad[rel] = sorted(imports_of(p) & {"torch", "train", "compressai"})
    assert not bad


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "runtime" / "probe.py"
    f.parent.mkdir()
    f.write_text("import numpy as np\ndef f():\n    from export import onnx\n    from .bundle import Bundle\n")
    assert imports_of(f, tmp_path) == {"numpy", "export", "runtime"}
    f.write_text("from runtime.files import write_atomic\nimport runtime.cli\nfrom runtime.codec import Codec\n")
    assert imports_of(f, tmp_path, skip=SHARED) == {"runtime"}  # the shared helpers pass, the codec does not
    f.write_text("from runtime.files import write_atomic\nimport runtime.cli\n")
    assert imports_of(f, tmp_path, skip=SHARED) == set()
