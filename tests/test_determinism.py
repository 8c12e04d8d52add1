"""Seeded runs with deterministic ops give bit-identical weights, across processes.

Each run is a fresh subprocess (this file in ``worker`` mode), so nothing carries over from one
run to the next but the seed: not Python's, NumPy's or TensorFlow's global random state, nor
tf.data's iterator counters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = ("iwae", "wgan_gp")  # every kind of draw: binarization, k posterior draws, z, GP alpha


def _worker(args: dict) -> None:
    """Train each model for 2 epochs with ``train(deterministic=True)``; save the weights."""
    from tf_genai.data import load
    from tf_genai.training import train

    images, labels = load("digits")
    weights = {}
    for name in MODELS:
        for seed in args["seeds"]:
            result = train(name, data=(images[:192], labels[:192]), epochs=2, batch_size=32,
                           seed=seed, validation_fraction=0.1, deterministic=True, plots=False,
                           verbose=0)
            for i, w in enumerate(result.model.get_weights()):
                weights[f"{name}/seed{seed}/{i}"] = w
    np.savez(args["out"], **weights)


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_seeded_runs_give_bit_identical_weights(tmp_path):
    """Same seed in two processes: every weight bit-identical; another seed: different."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    runs = [(tmp_path / "a.npz", [0, 1]), (tmp_path / "b.npz", [0])]
    procs = [subprocess.Popen([sys.executable, __file__, "worker",
                               json.dumps({"out": str(out), "seeds": seeds})],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for out, seeds in runs]
    try:
        outputs = [proc.communicate(timeout=400)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-5000:]
    a, b = np.load(runs[0][0]), np.load(runs[1][0])
    for name in MODELS:
        keys = sorted(k for k in b.files if k.startswith(f"{name}/seed0/"))
        assert keys
        for key in keys:
            assert a[key].tobytes() == b[key].tobytes(), f"{key} differs between two seeded runs"
        other = [a[k.replace("/seed0/", "/seed1/")] for k in keys]
        assert any(not np.array_equal(x, a[k]) for x, k in zip(other, keys)), (
            f"{name}: seed 1 gave seed 0's weights: the seed is not used")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1] == "worker":
        _worker(json.loads(sys.argv[2]))
