"""The checks every zoo model runs through (tests/test_zoo.py, tests/test_export.py).

One code path for every model, as keras-hub's shared test helper does, driven by the model's
declared capabilities (``model.capabilities``), never by its family: config round trip,
a tiny-shape ``fit`` with finite metrics, ``.keras`` save -> load in a NEW process with equal
outputs and a continued ``fit`` from the saved optimizer state, SavedModel export loaded by
plain TensorFlow in a process that never imports tf_genai, and TFLite conversion.

Data: scikit-learn's 8x8 digits (first 256 images), in the model's data range, unshuffled so
that every process and epoch sees the same batches and losses can be compared across processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai import ranges

TESTS_DIR = Path(__file__).resolve().parent
IMAGE_SHAPE = (8, 8, 1)
NUM_IMAGES = 192
BATCH_SIZE = 32
PROBE_SIZE = 6
SUBPROCESS_TIMEOUT_S = 300
# "Continues the curve": the reloaded model's next-epoch loss must land near the loss an
# uninterrupted run gets for that epoch. Not exactly on it: Keras does not save
# SeedGenerator states in .keras files, so the reloaded model replays the noise stream
# (z, dropout masks, binarisation, timesteps) from its start, and on 6 unshuffled batches that
# replay alone moves the epoch loss by up to ~30% of the epoch-1 -> epoch-2 drop (measured).
# The optimizer state itself is compared exactly (every slot variable), so these bounds only
# need to catch a curve that restarts (weights or training state lost).
# The reloaded epoch's metric must lie within this fraction of the uninterrupted epoch-1 ->
# epoch-2 change of the uninterrupted value, or within CONTINUE_RTOL of it, whichever is wider
# (adversarial losses, and a loss at random times and noise, do not fall monotonically).
CONTINUE_FRACTION = 0.5
CONTINUE_RTOL = 0.1
EXPECTED_ZOO = {"vae", "colour_vae", "mlp_vae", "cvae", "iwae", "gan", "dcgan", "wgan_gp", "cgan",
                "sngan", "ddpm", "cddpm", "flow", "cflow"}
# Diffusion at the test shape: a one-level U-Net, 10 diffusion steps, 3 DDIM steps per sample;
# flow matching: the same U-Net, 3 ODE steps.
TINY_KWARGS = {**{name: dict(widths=(8,), timesteps=10, sample_steps=3)
                  for name in ("ddpm", "cddpm")},
               **{name: dict(widths=(8,), sample_steps=3) for name in ("flow", "cflow")}}


# ------------------------------------------------------------------------------------ data


def make_model(name: str, **kwargs: Any):
    """The zoo model ``name`` at the tiny test shape (8x8x1, unless ``image_shape`` is given);
    other arguments its defaults."""
    import tf_genai

    kwargs = {"image_shape": IMAGE_SHAPE, **TINY_KWARGS.get(name, {}), **kwargs}
    return tf_genai.create(name, **kwargs)


def digits(model, n: int = NUM_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` sklearn digits, float32 ``(n, 8, 8, C)`` in ``model.data_range``: the
    grey digit in every one of the model's C channels, each channel a different brightness."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:n] / 16.0).astype("float32")[..., None]  # (n, 8, 8, 1) in [0, 1]
    channels = model.image_shape[-1]
    if channels > 1:  # (n, 8, 8, C), k/16 scaled by (c + 1) / C
        x = x * (np.arange(1, channels + 1, dtype="float32") / channels)
    if model.data_range == "symmetric":
        x = x * 2.0 - 1.0
    return x, d.target[:n].astype("int32")


def dataset(model, x: np.ndarray, y: np.ndarray):
    """Unshuffled batches: ``images``, or ``(images, labels)`` for a conditional model."""
    import tensorflow as tf

    data = (x, y) if model.num_classes else x
    return tf.data.Dataset.from_tensor_slices(data).batch(BATCH_SIZE)


def probe_inputs(model, n: int = PROBE_SIZE, seed: int = 123) -> dict[str, np.ndarray]:
    """Fixed inputs to compare outputs on: ``images``, ``z`` (a latent model) and
    (conditional) ``labels``."""
    rng = np.random.default_rng(seed)
    probe = {"images": digits(model, n)[0]}
    if model.capabilities.latent:
        probe["z"] = rng.standard_normal((n, *model.latent_shape)).astype("float32")
    if model.capabilities.conditional:
        probe["labels"] = (np.arange(n) % model.num_classes).astype("int32")
    return probe


def deterministic_outputs(model, probe: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs that must survive a save/load: seeded samples; for a latent model the
    latent -> image map on z (``render``); for a model that encodes, its codes; for a model
    with a likelihood, its NLL."""
    caps, labels = model.capabilities, probe.get("labels")
    n = len(probe["images"])
    out = {"sample": np.asarray(model.sample(n, seed=11, labels=labels))}
    if caps.latent:
        out["render"] = np.asarray(model.render(probe["z"], labels))
    if caps.encodes:
        out["encode"] = np.asarray(model.encode(probe["images"], labels=labels))
    if caps.likelihood:
        pixels = np.round(ranges.to_unit(probe["images"], model.data_range) * 255).astype("uint8")
        options = {k: v for k, v in CHEAP_NLL_OPTIONS.items() if k in model.nll_options}
        out["nll"] = np.asarray(model.nll(pixels, labels, seed=0, **options)["nll"])
    return out


# The NLL's cost kept small at the test shape, for the models whose nll_options take them: a
# bound's importance samples, an ODE likelihood's steps.
CHEAP_NLL_OPTIONS = {"num_samples": 4, "steps": 2}


# ------------------------------------------------------------------------------- training


def compile_model(model) -> None:
    """Compile as ``tf-genai train`` does (one Adam, or one per network for GANs)."""
    from tf_genai.training import compile_model as compile_like_training

    compile_like_training(model)


def optimizer_iterations(model) -> dict[str, int]:
    """``iterations`` of every optimizer the model trains with, by name."""
    return {name: int(opt.iterations.numpy()) for name, opt, _ in model.training_optimizers()}


def optimizer_state(model) -> dict[str, np.ndarray]:
    """Every optimizer variable (iterations, learning rate, Adam moments), by a stable key
    (the variable's name without the optimizer's, which Keras numbers per process: adam_2)."""
    return {f"{name}/{i:03d}/{v.name}": np.asarray(v.numpy())
            for name, opt, _ in model.training_optimizers() for i, v in enumerate(opt.variables)}


def seed_states(model) -> dict[str, list[int]]:
    """The model's own SeedGenerator state."""
    return {"seed_generator": [int(v) for v in np.asarray(model.seed_generator.state)]}


def fit_one_epoch(model, ds) -> dict[str, float]:
    """One epoch of the model's own ``train_step``; the epoch's metrics."""
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False).history
    return {k: float(v[-1]) for k, v in history.items()}


def continue_keys(model) -> tuple[str, ...]:
    """The metrics that must continue their curve after a reload: the objective a model
    minimises (its early-stopping monitor), else every metric it reports."""
    monitor = model.early_stopping_monitor
    return (monitor.removeprefix("val_"),) if monitor else tuple(model.metric_names)


def expected_metrics(model) -> set[str]:
    """The metric names the model declares."""
    return set(model.metric_names)


def check_finite_metrics(model, metrics: dict[str, float], when: str) -> None:
    missing = expected_metrics(model) - set(metrics)
    assert not missing, f"{when}: metrics {sorted(missing)} missing from {sorted(metrics)}"
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    assert not bad, f"{when}: non-finite metrics {bad}"


# -------------------------------------------------------------------- config round trip


def check_config_round_trip(name: str) -> None:
    """``cls.from_config(m.get_config()).get_config() == m.get_config()``."""
    model = make_model(name)
    config = model.get_config()
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == config
    # The config must also survive JSON, as it does inside a .keras file.
    assert type(model).from_config(json.loads(json.dumps(config))).get_config() == config
    attrs = ["family", "image_shape", "num_classes", "data_range", "capabilities"]
    if model.capabilities.latent:
        attrs += ["latent_dim", "latent_shape"]
    for attr in attrs:
        assert hasattr(model, attr), f"{name} lacks the contract attribute {attr!r}"
    assert tuple(model.image_shape) == IMAGE_SHAPE


# --------------------------------------------- .keras save -> load in a new process -> fit


def _run_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=full_env,
    )


def _finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, _ = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{what}: subprocess timed out\n{out[-4000:]}") from None
    assert proc.returncode == 0, f"{what}: subprocess failed (rc={proc.returncode})\n{out[-6000:]}"
    return out


_RELOAD_SCRIPT = f"""
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
import zoo_helpers
zoo_helpers.reload_and_continue(*sys.argv[1:])
"""


def reload_and_continue(model_path: str, probe_path: str, result_path: str,
                        *modules: str) -> None:
    """(Run in the new process.) Load the .keras file, record outputs, fit one more epoch.
    ``modules`` are imported first (a family defined outside the package registers there)."""
    import importlib

    from tf_genai import export

    for module in modules:
        importlib.import_module(module)
    # The safe loader: the file's compile config is not read, its optimizer state is.
    model = export.load_model(model_path)
    probe = dict(np.load(probe_path))
    outputs = deterministic_outputs(model, probe)
    loaded_iterations = optimizer_iterations(model)
    np.savez(result_path + ".optimizer.npz", **optimizer_state(model))
    loaded_seed_states = seed_states(model)
    x, y = digits(model)
    try:
        metrics, fit_error = fit_one_epoch(model, dataset(model, x, y)), None
    except Exception as err:  # reported by the parent with the model's name
        metrics, fit_error = {}, f"{type(err).__name__}: {err}"
    np.savez(result_path + ".npz", **outputs)
    Path(result_path).write_text(json.dumps({
        "class": type(model).__name__,
        "config": model.get_config(),
        "compiled": bool(model.compiled),
        "loaded_iterations": loaded_iterations,
        "loaded_seed_states": loaded_seed_states,
        "iterations_after_fit": optimizer_iterations(model),
        "metrics": metrics,
        "fit_error": fit_error,
    }))


def check_save_load_continue(name: str, tmp_path: Path,
                             imports: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fit an epoch, save, reload in a new process, compare outputs, continue the fit there.
    ``imports``: modules the new process imports first (a family defined outside the package).

    Weights (outputs on fixed inputs) and the optimizer state (every variable of every
    optimizer) must come back exactly; the reloaded model's next epoch must continue the
    loss curve of an uninterrupted run (``CONTINUE_FRACTION``, ``CONTINUE_RTOL``).

    Returns:
        The measured losses and seed states (for failure messages and reports).
    """
    model = make_model(name)
    compile_model(model)
    x, y = digits(model)
    ds = dataset(model, x, y)
    first = fit_one_epoch(model, ds)
    check_finite_metrics(model, first, f"{name} epoch 1")

    path = tmp_path / f"{name}.keras"
    model.save(path)
    probe = probe_inputs(model)
    probe_path = tmp_path / "probe.npz"
    np.savez(probe_path, **probe)
    expected = deterministic_outputs(model, probe)
    saved_iterations = optimizer_iterations(model)
    assert saved_iterations and all(v > 0 for v in saved_iterations.values()), saved_iterations
    saved_optimizer = optimizer_state(model)
    saved_seed_states = seed_states(model)

    result_path = tmp_path / "reloaded.json"
    proc = _run_python(_RELOAD_SCRIPT, str(path), str(probe_path), str(result_path), *imports)
    # The uninterrupted second epoch runs here while the new process loads (2 cores).
    uninterrupted = fit_one_epoch(model, ds)
    after_uninterrupted = optimizer_iterations(model)
    _finish(proc, f"{name}: reload {path.name}")

    result = json.loads(result_path.read_text())
    reloaded_outputs = dict(np.load(str(result_path) + ".npz"))
    assert result["class"] == type(model).__name__
    assert result["config"] == model.get_config()
    assert result["compiled"], (
        f"{name}: the model loaded from {path.name} is not compiled, so its optimizer state is "
        f"lost (fit after load: {result['fit_error']})"
    )
    assert result["fit_error"] is None, f"{name}: fit after reload failed: {result['fit_error']}"
    for key, want in expected.items():
        np.testing.assert_allclose(reloaded_outputs[key], want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: {key} differs after reload")

    assert result["loaded_iterations"] == saved_iterations, (
        f"{name}: optimizer iterations {saved_iterations} saved, "
        f"{result['loaded_iterations']} after load"
    )
    assert result["iterations_after_fit"] == after_uninterrupted, (
        f"{name}: after one more epoch the reloaded optimizers count "
        f"{result['iterations_after_fit']}, the uninterrupted ones {after_uninterrupted}"
    )
    loaded_optimizer = dict(np.load(str(result_path) + ".optimizer.npz"))
    assert sorted(loaded_optimizer) == sorted(saved_optimizer), (
        f"{name}: optimizer variables differ after reload: saved {len(saved_optimizer)}, "
        f"loaded {len(loaded_optimizer)}"
    )
    for key, want in saved_optimizer.items():
        np.testing.assert_array_equal(loaded_optimizer[key], want,
                                      err_msg=f"{name}: optimizer variable {key} after reload")

    reloaded = result["metrics"]
    check_finite_metrics(model, reloaded, f"{name} epoch 2 after reload")
    figures = {"epoch1": first, "epoch2_uninterrupted": uninterrupted, "epoch2_reloaded": reloaded,
               "seed_state_saved": saved_seed_states,
               "seed_state_loaded": result["loaded_seed_states"]}
    for key in continue_keys(model):
        r, u, f = reloaded[key], uninterrupted[key], first[key]
        ok = abs(r - u) <= max(CONTINUE_FRACTION * abs(f - u), CONTINUE_RTOL * abs(u), 1e-3)
        assert ok, (
            f"{name}: {key} of the next epoch after reload {r:.5f} does not continue the "
            f"uninterrupted run's {u:.5f} (epoch 1: {f:.5f}); figures: {figures}"
        )
    return figures


# ----------------------------------------------------------------- SavedModel in plain TF


_PLAIN_TF_SCRIPT = """
import importlib.abc, json, sys
import numpy as np

class _NoTFGenAI(importlib.abc.MetaPathFinder):
    # Fail loudly if anything (TF's loader included) tries to import tf_genai.
    def find_spec(self, name, path=None, target=None):
        if name == "tf_genai" or name.startswith("tf_genai."):
            raise ImportError("the export must load without tf_genai; it imported " + name)
        return None

sys.meta_path.insert(0, _NoTFGenAI())
import tensorflow as tf

export_dir, calls_path, out_path = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
calls = json.loads(open(calls_path).read())
inputs = dict(np.load(calls_path + ".npz"))
results = {}
for call_name, (signature, args) in calls.items():
    fn = loaded.signatures[signature]
    out = fn(**{k: tf.constant(inputs[v]) for k, v in args.items()})
    for k, v in out.items():
        results[call_name + "/" + k] = v.numpy()
np.savez(out_path + ".npz", **results)
leaked = sorted(m for m in sys.modules if m == "tf_genai" or m.startswith("tf_genai."))
json.dump({"signatures": sorted(loaded.signatures), "tf_genai_modules": leaked,
           "metadata": json.load(open(export_dir + "/metadata.json"))}, open(out_path, "w"))
"""


def export_calls(model, probe: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """The signature calls to make on an export, as ``{call: (signature, {arg: array key})}``:
    every signature the model declares, with inputs chosen by name, plus serving_default.

    Batch sizes differ between calls (6, 3, 4) to show the batch dimension is dynamic.
    """
    n = len(probe["images"])
    # An export's own defaults for the sample signature's further inputs (steps, guidance).
    defaults = model.export_metadata().get("sample_defaults", {})
    arrays = {"images": probe["images"][:3],
              "t": np.array([0, 4, 9], np.int32),  # timesteps of the tiny test models' 10
              "t_float": np.array([0.0, 0.4, 0.9], np.float32),  # a continuous time
              "n4": np.int32(4), "n2": np.int32(2), "seed7": np.int32(7), "seed8": np.int32(8),
              **{k: np.asarray(v, np.float32 if isinstance(v, float) else np.int32)
                 for k, v in defaults.items()}}
    if model.capabilities.latent:
        arrays["z"] = probe["z"]
    if model.capabilities.conditional:
        arrays["labels"] = probe["labels"]
        arrays["labels3"] = probe["labels"][:3]
        arrays["labels4"] = (np.arange(4) % model.num_classes).astype("int32")
        arrays["labels2"] = (np.arange(2) % model.num_classes).astype("int32")
    by_batch = {"z": ("z", "labels"), "images": ("images", "labels3"),
                "x_t": ("images", "labels3")}
    calls = {}
    for name, signature in model.serving_signatures().items():
        keys = list(signature.inputs)
        if name == "sample":
            for call, (count, seed, labels) in {"sample_a": ("n4", "seed7", "labels4"),
                                                "sample_b": ("n4", "seed7", "labels4"),
                                                "sample_c": ("n2", "seed8", "labels2")}.items():
                args = {"num_samples": count, "seed": seed, "labels": labels}
                calls[call] = ("sample", {k: args.get(k, k) for k in keys})
            continue
        first = next(k for k in keys if k in by_batch)
        array, labels = by_batch[first]
        args = {first: array, "labels": labels}
        if "t" in keys and signature.inputs["t"].dtype.is_floating:
            args["t"] = "t_float"
        calls[name] = (name, {k: args.get(k, k) for k in keys})
    calls["serving_default"] = ("serving_default", calls[model.serving_default][1]
                                if model.serving_default != "sample" else calls["sample_a"][1])
    assert n == PROBE_SIZE
    return calls, arrays


def expected_export_outputs(model, arrays: dict[str, np.ndarray],
                            calls: dict) -> dict[str, np.ndarray]:
    """What the in-process model gives for each export call: ``model.sample`` for the seeded
    sample calls, ``model.render`` for a latent model's render signature, the signature's
    function otherwise."""
    out = {
        "sample_a/images": model.sample(4, seed=7, labels=arrays.get("labels4")),
        "sample_c/images": model.sample(2, seed=8, labels=arrays.get("labels2")),
    }
    signatures = model.serving_signatures()
    for call, (name, args) in calls.items():
        if name == "sample":
            continue
        fn = signatures[model.serving_default if name == "serving_default" else name].fn
        if name == "serving_default" and model.serving_default == "sample":
            out["serving_default/images"] = out["sample_a/images"]
            continue
        for key, value in fn(**{k: arrays[v] for k, v in args.items()}).items():
            out[f"{call}/{key}"] = value
    if model.capabilities.latent:
        out[f"{model.render_signature}/images"] = model.render(arrays["z"], arrays.get("labels"))
    return {k: np.asarray(v) for k, v in out.items()}


def expected_signatures(model) -> list[str]:
    """Every signature the model declares, and serving_default; ``sample`` always, and the
    render signature for a latent model (the contract's)."""
    names = set(model.serving_signatures())
    assert "sample" in names, names
    if model.capabilities.latent:
        assert model.render_signature in names, names
    return sorted(names | {"serving_default"})


def check_export_in_plain_tf(name: str, tmp_path: Path, **kwargs: Any) -> None:
    """Export, load in a process without tf_genai, call every signature, compare outputs.
    ``kwargs`` go to :func:`make_model` (e.g. a colour ``image_shape``)."""
    from tf_genai import export

    model = make_model(name, **kwargs)
    export_dir = export.export_saved_model(model, tmp_path / "export")
    assert export_dir == tmp_path / "export" and (export_dir / "saved_model.pb").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left"

    calls, arrays = export_calls(model, probe_inputs(model))
    calls_path = tmp_path / "calls.json"
    calls_path.write_text(json.dumps(calls))
    np.savez(str(calls_path) + ".npz", **arrays)
    out_path = tmp_path / "outputs.json"
    proc = _run_python(_PLAIN_TF_SCRIPT, str(export_dir), str(calls_path), str(out_path))
    expected = expected_export_outputs(model, arrays, calls)  # meanwhile, in this process
    _finish(proc, f"{name}: plain-TF load of {export_dir}")

    result = json.loads(out_path.read_text())
    got = dict(np.load(str(out_path) + ".npz"))
    assert result["tf_genai_modules"] == [], result["tf_genai_modules"]
    assert result["signatures"] == expected_signatures(model)
    for key, want in expected.items():
        assert got[key].dtype == np.float32, (key, got[key].dtype)
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-5,
                                   err_msg=f"{name}: export {key} differs from the model")
    np.testing.assert_array_equal(got["sample_a/images"], got["sample_b/images"])  # same seed
    assert got["sample_a/images"].shape == (4, *model.image_shape)
    low, high = (0.0, 1.0) if model.data_range == "unit" else (-1.0, 1.0)
    assert got["sample_a/images"].min() >= low and got["sample_a/images"].max() <= high

    meta = result["metadata"]
    assert meta["family"] == model.family and meta["zoo_name"] == name
    assert meta["image_shape"] == list(model.image_shape)
    assert meta["capabilities"] == dataclasses.asdict(model.capabilities)
    if model.capabilities.latent:
        assert meta["latent_dim"] == model.latent_dim
        assert meta["latent_shape"] == list(model.latent_shape)
    assert meta["num_classes"] == model.num_classes and meta["data_range"] == model.data_range
    assert sorted([*meta["signatures"], "serving_default"]) == expected_signatures(model)
    assert meta["serving_default"] == model.serving_default
    assert meta["signatures"]["sample"]["inputs"]["seed"] == {"dtype": "int32", "shape": []}


# ------------------------------------------------------------------------------------ TFLite


def run_tflite(flatbuffer: bytes, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a TFLite flatbuffer's only signature (LiteRT if installed, else tf.lite)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    return runner(**inputs)


def check_tflite(name: str, tmp_path: Path, **kwargs: Any) -> None:
    """The model's network (``tflite_part``: decoder, generator or denoiser) converts to TFLite
    and gives the model's outputs (1e-5). ``kwargs`` go to :func:`make_model`."""
    from tf_genai import export

    model = make_model(name, **kwargs)
    path = tmp_path / f"{name}.tflite"
    flatbuffer = export.convert_to_tflite(model, path)
    assert path.read_bytes() == flatbuffer
    calls, arrays = export_calls(model, probe_inputs(model))
    signature = model.tflite_signature
    inputs = {k: arrays[v] for k, v in calls[signature][1].items()}
    outputs = run_tflite(flatbuffer, inputs)
    want = model.serving_signatures()[signature].fn(**inputs)
    assert sorted(outputs) == sorted(want)
    for key, value in want.items():
        np.testing.assert_allclose(outputs[key], np.asarray(value), rtol=0, atol=1e-5,
                                   err_msg=f"{name}: TFLite {key} differs from the model")
    if model.capabilities.latent and signature == model.render_signature:
        np.testing.assert_allclose(outputs["images"], np.asarray(
            model.render(inputs["z"], inputs.get("labels"))), rtol=0, atol=1e-5)
