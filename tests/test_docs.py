"""The documentation a user reads: the README front page, the site built from docs/, docstrings.

- The site (``mkdocs.yml``, ``docs/``) builds with ``mkdocs build --strict``: a broken link or
  anchor, an API object that does not resolve, or a notebook that does not render fails it.
  Skipped, saying so, without the ``docs`` extra; ``.ci/run`` installs it, so under ``CI=true``
  a missing tool fails instead.
- Every public name of ``tf_genai`` and of ``tf_genai.data`` / ``plotting`` / ``evaluation`` /
  ``export`` has a docstring (the API reference is generated from them).
- The README stays a front page: short, its two commands first, every zoo name in its table,
  its library example runnable as written; links in the Markdown files resolve in the
  repository, so the pages read on a code host too.
- Project files speak of the project only: no sentence about how it is worked on.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from needs import REPO_ROOT, skip_or_fail_on_ci

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
SITE_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
              "mkdocs_jupyter")


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a missing parent package
        return None


# ---------------------------------------------------------------------------- the site


@pytest.mark.subprocess
def test_site_builds_with_warnings_as_errors(tmp_path):
    missing = [name for name in SITE_TOOLS if _find_spec(name) is None]
    if missing:
        skip_or_fail_on_ci(f"the documentation build needs the docs extra "
                            f"(pip install -e \".[docs]\"); missing: {', '.join(missing)}")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"

    # What the generated pages must hold: the parser's commands, the package's names, the
    # notebooks' committed pictures, the zoo.
    from tf_genai.cli import build_parser
    from tf_genai.zoo import PRESETS

    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if a.choices and a.dest == "command")
    for name in commands.choices:
        assert f"tf-genai {name}" in cli, name
    data_api = (site / "reference" / "api" / "data" / "index.html").read_text(encoding="utf-8")
    assert 'id="tf_genai.data.pipeline.make_dataset"' in data_api
    home = (site / "index.html").read_text(encoding="utf-8")
    for name in PRESETS:
        assert f"<code>{name}</code>" in home, name
    notebook = (site / "notebooks" / "01_vae_mnist" / "index.html").read_text(encoding="utf-8")
    assert "data:image/png;base64" in notebook  # outputs rendered, not executed


# ---------------------------------------------------------------------------- docstrings


def _attribute_docstring(module_name: str, name: str) -> str | None:
    """The string literal right after ``name = ...`` in a module (what mkdocstrings shows)."""
    tree = ast.parse(Path(importlib.import_module(module_name).__file__).read_text("utf-8"))
    for node, after in zip(tree.body, tree.body[1:]):
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if name in targets and isinstance(after, ast.Expr) and isinstance(
                after.value, ast.Constant) and isinstance(after.value.value, str):
            return after.value.value
    return None


def _docstring(package: str, name: str) -> str | None:
    obj = getattr(importlib.import_module(package), name)
    if inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj):
        return obj.__doc__  # a class's own docstring: __doc__ is not inherited
    home = getattr(importlib.import_module(package), "_EXPORTS", {})
    module = next((f"{package}.{m}" for m, names in home.items() if name in names), package)
    return _attribute_docstring(module, name)


def _public_names() -> list[tuple[str, str]]:
    import tf_genai

    names = [("tf_genai", name) for name in sorted(tf_genai._SUBMODULES | {"create", "available"})]
    for package in ("tf_genai.data", "tf_genai.plotting", "tf_genai.evaluation",
                    "tf_genai.export"):
        names += [(package, name) for name in importlib.import_module(package).__all__]
    return names


def test_public_names_have_docstrings():
    names = _public_names()
    assert len(names) > 60
    missing = [f"{package}.{name}" for package, name in names
               if not (_docstring(package, name) or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_a_name_without_a_docstring_is_found():
    # The check above can fail: a class and a constant with no docstring are reported.
    assert _attribute_docstring("tf_genai.data.sources", "HELDOUT_DIVISOR") is None
    assert _attribute_docstring("tf_genai.data.sources", "SPLITS")

    class Undocumented:
        pass

    assert Undocumented.__doc__ is None


# ---------------------------------------------------------------------------- the README


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    assert lines[:6] == ["# tf_genai", "", "```bash",
                         'pip install -e ".[dev]" && tf-genai train vae --out runs/vae --overwrite',
                         "python -m pytest", "```"]


def test_readme_zoo_table_names_every_zoo_model():
    from tf_genai.zoo import PRESETS

    text = README.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(\w+)`", text, flags=re.M))
    assert listed == set(PRESETS), (
        f"README's zoo table: missing {sorted(set(PRESETS) - listed)}, "
        f"not in the zoo {sorted(listed - set(PRESETS))}")


@pytest.mark.slow
def test_readme_library_example_runs_as_written(tmp_path, monkeypatch):
    """The README's Python block, unchanged, on a clone without MNIST and without network (it
    falls back to the embedded digits, as ``mnist_or_digits`` documents)."""
    from tf_genai.data import sources
    from tf_genai.errors import DataError

    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    monkeypatch.setenv("TF_GENAI_MNIST", str(tmp_path / "no_mnist"))

    def offline(name):
        raise DataError(f"{name}: not cached and no network (test)")

    monkeypatch.setattr(sources, "_read_keras", offline)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    assert (tmp_path / "manifold.png").stat().st_size > 0
    assert (tmp_path / "vae.keras").stat().st_size > 0


# ---------------------------------------------------------------------------- links and words

LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _markdown_files() -> list[Path]:
    return [README, REPO_ROOT / "benchmarks" / "README.md",
            *sorted(DOCS.rglob("*.md"))]


def test_markdown_links_resolve_in_the_repository():
    broken = []
    for path in _markdown_files():
        text = FENCE.sub("", path.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if "://" in target or target.startswith(("mailto:", "/")):
                continue
            resolved = (path.parent / target).resolve()
            if resolved.is_relative_to(DOCS / "reference"):
                continue  # generated when the site is built, which checks these links
            if not resolved.exists():
                broken.append(f"{path.relative_to(REPO_ROOT)}: {target}")
    assert not broken, f"links to nothing (on a code host): {broken}"


# Sentences about how the project is worked on, not about the project.
WORKLOG = re.compile(
    r"\b(?:this|that|the|a|next|previous|earlier|later|second|first|each|every|one|its own)"
    r" sessions?(?:'s?)?\b|\bsessions'|\bissue \d+|\bissue's\b|\bthe issue\b"
    r"|\bseed (?:code|article)\b|\bthe seed's\b", re.I)


def _project_texts() -> list[tuple[str, str]]:
    """(place, text) of every project file a user reads: the README, docs/, tf_genai/,
    benchmarks/, and the notebooks' cells (their sources, not their outputs)."""
    import json

    texts = [("README.md", README.read_text(encoding="utf-8"))]
    for folder, patterns in (("docs", ("*.md", "*.py")), ("tf_genai", ("*.py", "*.md")),
                             ("benchmarks", ("*.py", "*.md", "*.sh"))):
        for pattern in patterns:
            texts += [(str(p.relative_to(REPO_ROOT)), p.read_text(encoding="utf-8"))
                      for p in sorted((REPO_ROOT / folder).rglob(pattern))]
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        texts += [(f"{notebook.name} cell {i}", "".join(cell["source"]))
                  for i, cell in enumerate(cells)]
    texts += [(str(p.relative_to(REPO_ROOT)), p.read_text(encoding="utf-8"))
              for p in sorted((REPO_ROOT / "notebooks").glob("*.py"))]
    return texts


def test_project_files_speak_of_the_project_only():
    found = [f"{place}: {m.group(0)!r}" for place, text in _project_texts()
             for m in WORKLOG.finditer(text)]
    assert not found, f"sentences about how the project is worked on: {found}"
    # ... and the pattern finds what it is for.
    assert WORKLOG.search("the cgan picture predates the second session's changes")
    assert WORKLOG.search("Each session trains its own cached classifier")
    assert WORKLOG.search("(issue 18's table)")
