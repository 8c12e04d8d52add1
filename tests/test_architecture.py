"""The architecture rules of docs/ARCHITECTURE.md, as tests that fail when one is broken.

- Imports flow one way and no package has an import circle: the import-linter contracts in
  ``pyproject.toml`` (layers: the CLI over training over export/evaluation/callbacks over the
  models over data/plotting/losses ... over errors; acyclic siblings), run by ``lint-imports``.
- ``tf_genai/`` never imports Keras' private ``keras.src`` (its layout changes between releases).
- Outside ``tf_genai/models/`` nothing branches on a family: no ``.family ==``, no
  ``isinstance`` with a family class, no ``hasattr``/``getattr`` probing a model for a family
  method; the rest of the package reads ``model.capabilities``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from needs import skip_or_fail_on_ci

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tf_genai"
FAMILY_CLASSES = {"VAE", "GAN", "Diffusion", "LatentModel"}
# What a model may or may not have by family: probing for it is a family test in disguise.
FAMILY_ATTRIBUTES = {"encode", "decode", "generate", "render", "latents", "latent_dim",
                     "latent_shape", "log_weights", "posterior", "nll", "trajectory",
                     "reconstruct", "render_signature", "denoise"}


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports")
    if lint is None:
        skip_or_fail_on_ci("import-linter is not installed: pip install -e '.[dev]'")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([lint, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, added", [
    ("tf_genai/losses.py", "from tf_genai import models"),  # a low layer importing a model
    ("tf_genai/data/idx.py", "from tf_genai.data import sources"),  # a circle in data/
])
def test_the_contracts_catch_a_regression(tmp_path, module, added):
    """The same check on a copy of the package with one bad import added fails."""
    shutil.copytree(PACKAGE, tmp_path / "tf_genai")
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{added}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-3000:]


def _python_files(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_keras_src_import_anywhere_in_the_package():
    found = []
    for path in _python_files(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n == "keras.src" or n.startswith("keras.src.")]
    assert not found, found


def family_branches(source: str, filename: str) -> list[str]:
    """Lines of ``source`` that branch on a model's family (the module docstring's three kinds)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "family" for s in sides):
                found.append(f"{filename}:{node.lineno} compares .family")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "isinstance" and len(node.args) == 2:
                classes = node.args[1]
                names = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", None)
                         for n in (classes.elts if isinstance(classes, ast.Tuple) else [classes])}
                if names & FAMILY_CLASSES:
                    found.append(f"{filename}:{node.lineno} isinstance of a family class")
            if node.func.id in ("hasattr", "getattr") and len(node.args) >= 2:
                attribute = node.args[1]
                if isinstance(attribute, ast.Constant) and attribute.value in FAMILY_ATTRIBUTES:
                    found.append(f"{filename}:{node.lineno} {node.func.id}(..., "
                                 f"{attribute.value!r})")
    return found


def test_no_family_branch_outside_the_models():
    found = []
    for path in _python_files(PACKAGE):
        if PACKAGE / "models" in path.parents:
            continue
        found += family_branches(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, found


@pytest.mark.parametrize("line", [
    "if model.family == 'vae': pass",
    "ok = isinstance(model, VAE)",
    "ok = hasattr(model, 'encode')",
    "f = getattr(model, 'latent_dim', None)",
])
def test_the_family_branch_check_sees_each_kind(line):
    assert family_branches(line, "example.py")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
