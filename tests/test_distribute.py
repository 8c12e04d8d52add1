"""tf.distribute: strategies by name, MirroredStrategy == one device, two-worker agreement.

Logical CPU devices must be configured before TensorFlow initialises its devices, so the
distributed runs happen in fresh subprocesses running this file as a script (``worker`` mode);
each one trains every model it is asked for and writes the weights' comparison as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# Every zoo class and network kind; iwae (vae with k = 5) and cddpm (ddpm with labels, as cvae
# and cgan cover labels) are left out to keep this test near four minutes on two cores.
# The GANs train with DiffAugment (its draws made for the global batch); sngan adds spectral
# normalisation's power iteration.
ZOO = ("vae", "mlp_vae", "cvae", "gan", "dcgan", "wgan_gp", "cgan", "sngan", "ddpm")
# The zoo defaults, dropout included: FastDropout draws its masks for the global batch and
# slices them per replica, so a mirrored run drops what a one-device run drops (before, every
# replica drew the same mask and these runs differed).
NUM_IMAGES, BATCH = 64, 16  # 4 global batches, split evenly over 2 replicas
TOLERANCE = 1e-4  # float32 sums in another order; measured differences are 6e-8 to 1.6e-6
# The MLP GAN's weights differ by up to 2.7e-4 (measured, float32) while its losses agree to 1e-6.
# Measured cause: Adam (epsilon 1e-7) divides near-zero gradients by their own size, so float32
# reduction-order noise in them becomes steps of ~lr; the same run with SGD, or with Adam's
# epsilon at 1e-3, differs by 1.5e-8. So its weights get a bound of a few Adam steps.
# sngan's generator kernels likewise differ by ~1 Adam step (1.8e-4 at lr 2e-4, measured) while
# its losses agree to 1e-6; with SGD the same augmented run differs by 1.7e-6 (measured).
LOOSE = {"gan": 1e-3, "sngan": 1e-3}


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run_worker(mode: str, args: dict, *, timeout: float, env: dict | None = None):
    cmd = [sys.executable, __file__, mode, json.dumps(args)]
    proc = subprocess.run(cmd, cwd=REPO, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f"{mode} worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _model_kwargs(name: str) -> dict:
    from zoo_helpers import TINY_KWARGS  # the zoo defaults, a tiny U-Net for diffusion

    return dict(TINY_KWARGS.get(name, {}))


def _train_tiny(name: str, strategy: str | None):
    """One epoch of ``name`` on 64 digits in batches of 16, seeded and deterministic; a model
    that augments with DiffAugment's policy."""
    from tf_genai import augment, registry
    from tf_genai.data import load
    from tf_genai.training import train

    augments = registry.entry(name).cls.CAPABILITIES.augments
    images, labels = load("digits")
    result = train(
        name, data=(images[:NUM_IMAGES], labels[:NUM_IMAGES]), split="all", epochs=1,
        batch_size=BATCH,
        seed=0, validation_fraction=0.0, strategy=strategy, deterministic=True, plots=False,
        verbose=0, model_kwargs=_model_kwargs(name),
        augment=augment.DIFF_AUGMENT if augments else None,
    )
    return result


# --------------------------------------------------------------------------- worker mode
def _mirrored_worker(args: dict) -> None:
    """Split the CPU in two, then train each model on one device and mirrored; write diffs."""
    from tf_genai import distribute

    distribute.split_cpu(2)  # before any TensorFlow op
    import tensorflow as tf

    report = {}
    for name in args["models"]:
        single = _train_tiny(name, None)
        mirrored = _train_tiny(name, "mirrored")
        a, b = single.model.get_weights(), mirrored.model.get_weights()
        report[name] = {
            "replicas": mirrored.model.distribute_strategy.num_replicas_in_sync,
            "default_replicas": tf.distribute.get_strategy().num_replicas_in_sync,
            "max_abs_diff": max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)),
            "max_abs_weight": max(float(np.max(np.abs(x))) for x in a),
            "changed": max(float(np.max(np.abs(x - y))) for x, y in
                           zip(a, _initial_weights(name))),
            "history_single": single.history, "history_mirrored": mirrored.history,
        }
    Path(args["out"]).write_text(json.dumps(report))


def _uneven_worker(args: dict) -> None:
    """Split the CPU in two; train each model with SGD on ``n`` images in batches of 16, on one
    device and mirrored (a batch of 15 splits 8 + 7); write the weight differences."""
    from tf_genai import distribute

    distribute.split_cpu(2)  # before any TensorFlow op
    import keras
    import tensorflow as tf

    from tf_genai import ranges, registry
    from tf_genai.data import load

    tf.config.experimental.enable_op_determinism()
    images, labels = load("digits")
    x, y = images[:args["n"]].astype("float32"), labels[:args["n"]].astype("int32")
    report = {}
    for name in args["models"]:
        weights = {}
        for strategy in (None, "mirrored"):
            keras.utils.set_random_seed(0)
            dist = distribute.get_strategy(strategy)
            with dist.scope():
                extra = {"num_classes": 10} if registry.entry(name).defaults.get("num_classes") else {}
                extra.update(_model_kwargs(name))
                model = registry.create(name, image_shape=(8, 8, 1), seed=0, **extra)
                # SGD: Adam's division by the gradient's size would amplify round-off.
                model.compile(**{key: keras.optimizers.SGD(0.05)
                                 for key in model.default_optimizers()})
            xs = ranges.unit_to(x, model.data_range)
            data = (xs, y) if model.num_classes else xs
            model.fit(tf.data.Dataset.from_tensor_slices(data).batch(16), epochs=1, verbose=0)
            weights[strategy or "single"] = model.get_weights()
        initial = registry.create(name, image_shape=(8, 8, 1), seed=0, **extra).get_weights()
        a, b = weights["single"], weights["mirrored"]
        report[name] = {
            "max_abs_diff": max(float(np.max(np.abs(u - v))) for u, v in zip(a, b)),
            "max_change": max(float(np.max(np.abs(u - w))) for u, w in zip(a, initial)),
        }
    Path(args["out"]).write_text(json.dumps(report))


def _initial_weights(name: str):
    import keras

    from tf_genai import registry

    keras.utils.set_random_seed(0)
    kwargs = dict(image_shape=(8, 8, 1), seed=0, **_model_kwargs(name))
    if registry.entry(name).defaults.get("num_classes") is not None:
        kwargs["num_classes"] = 10
    return registry.create(name, **kwargs).get_weights()


def _multiworker_worker(args: dict) -> None:
    """One worker of a MultiWorkerMirroredStrategy cluster (TF_CONFIG is set by the test)."""
    from tf_genai.training import train
    from tf_genai.data import load

    images, labels = load("digits")
    weights = {}
    for name in args["models"]:
        result = train(name, data=(images[:NUM_IMAGES], labels[:NUM_IMAGES]), split="all", epochs=1,
                       batch_size=BATCH, seed=0, validation_fraction=0.0, strategy="multiworker",
                       deterministic=True, plots=False, verbose=0,
                       model_kwargs=_model_kwargs(name))
        for i, w in enumerate(result.model.get_weights()):
            weights[f"{name}/{i}"] = w
        weights[f"{name}/replicas"] = np.array(
            result.model.distribute_strategy.num_replicas_in_sync)
    np.savez(args["out"], **weights)


# --------------------------------------------------------------------------- fast unit tests
def test_default_and_unknown_strategies():
    import tensorflow as tf

    from tf_genai import distribute
    from tf_genai.errors import ConfigError

    assert distribute.get_strategy(None) is tf.distribute.get_strategy()
    assert distribute.get_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ConfigError, match="mirrored.*multiworker"):
        distribute.get_strategy("tpu")


@pytest.mark.parametrize(
    "tf_config, problem",
    [
        (None, "needs the environment variable TF_CONFIG"),
        ("{not json", "not valid JSON"),
        ('["a"]', "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
         "host:port"),
        ('{"cluster": {"worker": ["h:1"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}',
         "not in the cluster"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
         "out of range"),
    ],
)
def test_multiworker_needs_a_valid_tf_config(monkeypatch, tf_config, problem):
    from tf_genai import distribute
    from tf_genai.errors import ConfigError

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=problem):
        distribute.get_strategy("multiworker")


def test_split_cpu_rejects_bad_counts():
    from tf_genai import distribute
    from tf_genai.errors import ConfigError

    with pytest.raises(ConfigError, match="positive integer"):
        distribute.split_cpu(0)


# --------------------------------------------------------------------------- distributed runs
@pytest.mark.slow
@pytest.mark.subprocess
def test_mirrored_on_two_cpu_devices_equals_one_device(tmp_path):
    """Every zoo model: one epoch on 2 replicas gives one device's weights (same batches, seed)."""
    # float32: under mixed_bfloat16 a half batch and a full batch round differently, and Adam
    # turns that noise into ~1e-3 weight differences (measured) on weights with tiny gradients.
    env = dict(_env(), TF_GENAI_POLICY="float32")
    # Two worker processes, half the zoo each: most of the time is tracing, one Python thread
    # per process, so two processes overlap on two cores (194 s in one process, measured).
    outs = [tmp_path / f"mirrored{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, __file__, "mirrored",
                               json.dumps({"models": list(ZOO[i::2]), "out": str(out)})],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i, out in enumerate(outs)]
    try:
        logs = [proc.communicate(timeout=900)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, f"mirrored worker failed:\n{log[-6000:]}"
    report = {k: v for out in outs for k, v in json.loads(out.read_text()).items()}
    assert sorted(report) == sorted(ZOO)
    failures = []
    for name, r in report.items():
        assert r["replicas"] == 2 and r["default_replicas"] == 1, (name, r)
        assert r["changed"] > 1e-4, f"{name}: training did not move the weights"
        print(f"{name}: max |w_mirrored - w_single| = {r['max_abs_diff']:.2e} "
              f"(max |w| {r['max_abs_weight']:.2f})")
        if not r["max_abs_diff"] <= LOOSE.get(name, TOLERANCE):
            failures.append(f"{name}: {r['max_abs_diff']:.3g}")
        for key, values in r["history_single"].items():
            np.testing.assert_allclose(r["history_mirrored"][key], values, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {key}")
    assert not failures, "mirrored != single device: " + ", ".join(failures)


@pytest.mark.slow
@pytest.mark.subprocess
def test_mirrored_with_unfused_layers_equals_one_device(tmp_path):
    """The fused_layers lever off: Keras' synchronized batch norm and a float32 uniform per
    element for dropout; the dcgan (both kinds of layer) still trains as on one device."""
    out = tmp_path / "unfused.json"
    env = dict(_env(), TF_GENAI_POLICY="float32", TF_GENAI_FUSED_LAYERS="0")
    _run_worker("mirrored", {"models": ["dcgan"], "out": str(out)}, timeout=900, env=env)
    r = json.loads(out.read_text())["dcgan"]
    assert r["replicas"] == 2 and r["changed"] > 1e-4, r
    print(f"dcgan, unfused layers: max |w_mirrored - w_single| = {r['max_abs_diff']:.2e}")
    assert r["max_abs_diff"] <= TOLERANCE, r["max_abs_diff"]
    for key, values in r["history_single"].items():
        np.testing.assert_allclose(r["history_mirrored"][key], values, rtol=1e-5, atol=1e-6,
                                   err_msg=key)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("n, models", [(31, ["vae", "dcgan", "ddpm"])])
def test_mirrored_with_uneven_replica_batches_equals_one_device(tmp_path, n, models):
    """31 images in batches of 16 end on a batch of 15 (8 + 7 on two replicas: the split a data
    set of less than one batch gets too). Each replica's loss is weighted by its share of the
    global batch, so it trains like one device (dividing by the replica count gave 1.6e-3
    relative, measured)."""
    out = tmp_path / "uneven.json"
    env = dict(_env(), TF_GENAI_POLICY="float32")
    _run_worker("uneven", {"models": models, "n": n, "out": str(out)}, timeout=900, env=env)
    report = json.loads(out.read_text())
    for name in models:
        r = report[name]
        print(f"{name}, {n} images: max |w_mirrored - w_single| = {r['max_abs_diff']:.2e}, "
              f"max training change {r['max_change']:.2e}")
        assert r["max_change"] > 1e-4, f"{name}: training did not move the weights"
        assert r["max_abs_diff"] <= 1e-5 * r["max_change"] + 1e-7, (name, r)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_workers_on_loopback_agree(tmp_path):
    """Two MultiWorkerMirroredStrategy workers (TF_CONFIG on 127.0.0.1) end with equal weights."""
    models = ["mlp_vae", "dcgan"]
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, outs, logs = [], [], []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        outs.append(tmp_path / f"worker{index}.npz")
        logs.append(open(tmp_path / f"worker{index}.log", "w"))
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "multiworker",
             json.dumps({"models": models, "out": str(outs[-1])})],
            cwd=REPO, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 240
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    for index, proc in enumerate(procs):
        log = (tmp_path / f"worker{index}.log").read_text()[-4000:]
        assert proc.returncode == 0, f"worker {index} failed or timed out:\n{log}"
    w0, w1 = np.load(outs[0]), np.load(outs[1])
    assert sorted(w0.files) == sorted(w1.files)
    for name in models:
        assert int(w0[f"{name}/replicas"]) == 2
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    {"mirrored": _mirrored_worker, "multiworker": _multiworker_worker,
     "uneven": _uneven_worker}[sys.argv[1]](
        json.loads(sys.argv[2]))
