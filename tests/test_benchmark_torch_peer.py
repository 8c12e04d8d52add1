"""The PyTorch peer of ``benchmarks/throughput.py`` runs on what the extras install (issue 19).

The torch rows must never load TensorFlow (PyPI's torch 2.14 crashed in a process that had):
the networks cross over as a JSON description. These tests build that description from the
real zoo networks, rebuild it in a torch-only subprocess and compare output shapes, then run
the benchmark's quick mode on real MNIST with two PyTorch configurations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")


@pytest.fixture(scope="module")
def throughput(benchmark_module):
    return benchmark_module("throughput")


TORCH_SHAPES = """
import json, sys
sys.path.insert(0, {bench!r})
import torch
import throughput
specs = json.load(open({path!r}))
out = {{}}
for name, (spec, in_shape) in specs.items():
    net = throughput.torch_from_spec(spec)
    y = net(torch.zeros(in_shape))
    ys = y if isinstance(y, list) else [y]
    out[name] = [list(t.shape) for t in ys]
out["tensorflow_loaded"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


def _nchw(shape):
    """A Keras (batch, H, W, C) shape as PyTorch's (batch, C, H, W); others unchanged."""
    return [shape[0], shape[3], shape[1], shape[2]] if len(shape) == 4 else list(shape)


def test_torch_networks_match_the_keras_shapes_without_tensorflow(tmp_path, require_torch,
                                                                 throughput):
    import tf_genai

    vae, dcgan = tf_genai.create("vae"), tf_genai.create("dcgan")
    nets = {"encoder": vae.encoder, "decoder": vae.decoder, "generator": dcgan.generator,
            "discriminator": dcgan.discriminator}
    specs, expected = {}, {}
    for name, net in nets.items():
        in_shape = _nchw([2, *net.inputs[0].shape[1:]])
        specs[name] = (throughput.keras_network_spec(net), in_shape)
        outs = net.outputs
        expected[name] = [_nchw([2, *t.shape[1:]]) for t in outs]
    path = tmp_path / "specs.json"
    path.write_text(json.dumps(specs))
    proc = subprocess.run([sys.executable, "-c", TORCH_SHAPES.format(bench=BENCH, path=str(path))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got.pop("tensorflow_loaded") is False
    assert got == expected


def test_quick_benchmark_runs_the_torch_rows(mnist_dir, require_torch, tmp_path, throughput):
    """Real rounds on real MNIST: the keras-io row and two PyTorch configurations report a
    speed, and the best PyTorch configuration is named as the peer; the table is kept in the
    results file under this CPU kind."""
    results = tmp_path / "by_cpu.md"
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "throughput.py"), "--quick", "--groups", "vae",
         "--impls", "keras-io", "torch", "torch+cl", "--no-sampling", "--data", str(mnist_dir),
         "--results", str(results)],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    machine = next(ln for ln in proc.stdout.splitlines() if ln.startswith("machine: "))
    kind = machine[len("machine: "):]
    assert kind.startswith("cpu: ") and ("AMX" in kind)
    kept = results.read_text()
    assert throughput.SECTION_BEGIN.format(kind) in kept and "| vae | torch+cl |" in kept
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0] == "vae":
            rows[cells[1]] = cells
    assert set(rows) == {"keras-io", "torch", "torch+cl"}, proc.stdout
    for impl, cells in rows.items():
        assert not cells[2].startswith("failed"), cells
        assert float(cells[2]) > 0, cells
    assert rows["keras-io"][6].endswith("x")  # keras-io against the best PyTorch configuration
    best = [line for line in proc.stdout.splitlines() if line.startswith("best PyTorch")]
    assert best and ("vae: torch" in best[0]), proc.stdout


def test_results_file_keeps_one_section_per_cpu_kind(tmp_path, throughput):
    update = throughput.update_results
    path = tmp_path / "by_cpu.md"
    update(path, "cpu: A (2 cores; avx512_bf16; no AMX)", "cmd a", "| t | 1 |")
    update(path, "cpu: B (2 cores; amx_bf16; AMX)", "cmd b", "| t | 2 |")
    update(path, "cpu: A (2 cores; avx512_bf16; no AMX)", "cmd a2", "| t | 3 |")
    text = path.read_text()
    assert text.count("## cpu: A") == 1 and text.count("## cpu: B") == 1
    assert "| t | 3 |" in text and "| t | 1 |" not in text and "| t | 2 |" in text
    assert text.index("## cpu: A") < text.index("## cpu: B")  # a kind keeps its place
