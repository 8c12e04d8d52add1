"""Execute every notebook in notebooks/ with a real Jupyter kernel at the "ci" budget."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_vae_mnist.ipynb", "02_dcgan_mnist.ipynb", "03_conditional.ipynb",
        "04_diffusion.ipynb", "05_flow_matching.ipynb"]


def execute(path: Path, monkeypatch) -> list:
    """Run the notebook at ``path`` in a real kernel at the "ci" budget; its code cells, run.

    The kernel is a child process and inherits this environment: a small budget, quiet TF,
    and the repository on the path even when tf_genai is not installed.
    """
    monkeypatch.setenv("TF_GENAI_NOTEBOOK_BUDGET", "ci")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # cwd = notebooks/
    )
    client.execute()  # raises CellExecutionError on any error, naming the cell
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code_cells)
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    # figures returned as a cell's last expression are drawn inline as PNGs, never as text only
    shown = [o.get("data", {}) for c in code_cells for o in c.outputs]
    assert not [d for d in shown if "<Figure" in d.get("text/plain", "") and "image/png" not in d]
    assert sum("image/png" in d for d in shown) >= 5
    return code_cells


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, mnist_dir):
    # The notebooks read the shared MNIST: mnist_dir skips (fails on CI) without it, and
    # TF_GENAI_MNIST hands the kernel the very folder the fixture found (wherever
    # TF_GENAI_SHARED_DATA put it).
    monkeypatch.setenv("TF_GENAI_MNIST", str(mnist_dir))
    cells = execute(path, monkeypatch)
    assert f"data={mnist_dir}" in printed(cells[0])


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_notebook_runs_on_a_public_clone_without_network(monkeypatch, tmp_path):
    """No shared copy, an empty Keras cache and downloads refused (a proxy on a closed local
    port): the first notebook says so and runs on scikit-learn's digits."""
    (tmp_path / "no_mnist").mkdir()
    monkeypatch.setenv("TF_GENAI_MNIST", str(tmp_path / "no_mnist"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    cells = execute(NOTEBOOKS[0], monkeypatch)
    first = printed(cells[0])
    assert "note: no MNIST here" in first and "using scikit-learn's 'digits'" in first
    assert "data=digits" in first
    loading = next(c for c in cells if "data.load(" in c.source)
    assert "(1000, 8, 8, 1) float32 (359, 8, 8, 1)" in printed(loading)  # digits, in [0, 1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_carries_its_outputs(path):
    """The notebooks are committed executed at their full budget, so a reader on a code host
    sees the figures without running anything: every code cell ran, in order, without an
    error, and pictures are among the outputs."""
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code_cells]
    assert all(counts), f"{path.name}: cells never executed: {counts}"
    assert counts == sorted(counts), f"{path.name}: cells executed out of order: {counts}"
    outputs = [o for c in code_cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images >= 5, f"{path.name}: {images} pictures in the committed outputs"
    source = "".join(c.source for c in code_cells)
    assert "TF_GENAI_NOTEBOOK_BUDGET" in source  # the budget the outputs were made at is visible
