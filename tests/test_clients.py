"""Exports and training runs read by clients tf_genai did not write.

tf2onnx + onnxruntime and tensorboard (the ``clients`` extra, which ``.ci/run`` installs), Keras' own
``model.export``, TensorBoard's histograms read back with TensorFlow's event reader, and the
file permissions a model server running as another OS user needs.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from needs import skip_or_fail_on_ci
from zoo_helpers import IMAGE_SHAPE, make_model, probe_inputs


def _needs(module: str):
    """The optional client ``module``; a skip naming the extra, a failure under CI=true."""
    try:
        return __import__(module)
    except ImportError:
        skip_or_fail_on_ci(f"{module} is not installed: pip install -e '.[clients]'")


def test_export_is_readable_by_other_users(tmp_path):
    """4.1: the export folder was created 0700 (a temporary folder moved into place), so a model
    server running as another user got "Permission denied". Everything is group/other-readable
    now, as Keras' own export is."""
    from tf_genai import export

    old = os.umask(0o022)
    try:
        target = export.export_saved_model(make_model("vae"), tmp_path / "export")
    finally:
        os.umask(old)
    for path in [target, *target.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        needed = stat.S_IROTH | stat.S_IRGRP | ((stat.S_IXOTH | stat.S_IXGRP) if path.is_dir()
                                                 else 0)
        assert mode & needed == needed, f"{path}: mode {oct(mode)}"


# One zoo model per class and conditioning (the others share their class's call signature).
@pytest.mark.parametrize("name", ["vae", "cvae", "dcgan", "cgan", "ddpm", "cddpm"])
def test_keras_own_export_works_on_every_zoo_class(name, tmp_path):
    """4.3: ``model.export(dir, format="tf_saved_model")`` failed ("has never called") on every
    zoo model."""
    model = make_model(name)
    model.export(tmp_path / "keras_export", format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "keras_export"))
    probe = probe_inputs(model)
    n = len(probe["images"])
    by_name = {"z": probe.get("z"), "images": probe["images"], "x_t": probe["images"],
               "t": np.arange(n, dtype=np.int32), "labels": probe.get("labels")}
    spec = model.call_input_signature()[0]
    inputs = tf.nest.map_structure(lambda s: tf.constant(by_name[s.name]), spec)
    out = loaded.serve(inputs)
    assert tuple(out.shape) == (n, *IMAGE_SHAPE)
    expected = np.asarray(model(inputs))
    if np.array_equal(expected, model(inputs)):  # a deterministic call (not a VAE's draw)
        np.testing.assert_allclose(out, expected, atol=1e-5)


def _to_onnx(export_dir: Path, signature: str, out: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(export_dir),
         "--signature_def", signature, "--output", str(out), "--opset", "17"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cvae", "cgan"])
def test_tf2onnx_converts_the_signatures_and_onnxruntime_runs_them(name, tmp_path):
    """4.4: every signature but ``sample`` (decode/generate/encode/reconstruct) converts with
    tf2onnx and gives the model's outputs in onnxruntime (reconstruct's output was named
    "images" like its input, which tf2onnx refused). ``sample`` uses stateless random ops that
    ONNX has no kernel for."""
    _needs("tf2onnx")
    ort = _needs("onnxruntime")
    from tf_genai import export

    model = make_model(name)
    export_dir = export.export_saved_model(model, tmp_path / "export")
    probe = probe_inputs(model)
    cases = {}
    for signature, spec in model.serving_signatures().items():
        if signature == "sample":
            continue
        feeds = {k: probe[k] for k in spec.inputs}
        cases[signature] = (feeds, spec.fn(**feeds))
    assert model.render_signature in cases
    for signature, (feeds, want) in cases.items():
        path = tmp_path / f"{signature}.onnx"
        _to_onnx(export_dir, signature, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, feeds)))
        for key, value in want.items():
            np.testing.assert_allclose(got[key], np.asarray(value), atol=1e-5,
                                       err_msg=f"{name} {signature}/{key}")


def test_tensorboard_histograms_keep_every_weight_apart(tmp_path):
    """4.5: the generator, its average and the discriminator each had a layer "hidden", and
    their histograms overwrote each other; weight paths now start with the network's name."""
    from zoo_helpers import compile_model, dataset, digits

    _needs("tensorboard")
    model = make_model("dcgan")
    compile_model(model)
    x, y = digits(model, 64)
    model.fit(dataset(model, x, y), epochs=1, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)])
    tags = set()
    for event_file in (tmp_path / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value if v.tag.endswith("/histogram"))
    weights = [w for layer in model.layers for w in layer.weights]
    assert len(tags) == len(weights) == len({w.path for w in weights})
    assert any(t.startswith("ema_generator/") for t in tags)
