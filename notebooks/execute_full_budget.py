"""Execute the notebooks at their full budget and save them with their outputs.

The committed notebooks carry their outputs so a reader on a code host sees the figures;
rerun this after changing a notebook or the library (about 11 minutes on 2 CPU cores, plus the diffusion notebook's):

    python notebooks/execute_full_budget.py [GLOB]      # default: every *.ipynb here

The shared MNIST folder is found as the notebooks find it (TF_GENAI_MNIST, or ../shared beside
the checkout). stderr streams (TensorFlow's start-up lines) are dropped from the saved copies.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def main(pattern: str = "*.ipynb") -> int:
    os.environ["TF_GENAI_NOTEBOOK_BUDGET"] = "full"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent),
                                                             os.environ.get("PYTHONPATH")]))
    for path in sorted(HERE.glob(pattern)):
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs
                                if not (o.output_type == "stream" and o.name == "stderr")]
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
