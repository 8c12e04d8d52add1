"""The fused_layers lever (issue 19, item 1): FusedBatchNormalization and FastDropout keep a
plain variant -- Keras' own batch norm, one float32 uniform per element -- that the autotuner
can measure against the fast path, the environment can fix, and tf-genai train records.

The plain variants are checked against Keras' layers, the graph for the kernels each variant
runs, and the lever for leaving the config, inference and saved models alone.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from test_autotune import BF16_CPU, own_cache  # noqa: F401 (autouse: own cache, no env levers)

from tf_genai import autotune, devices, layers, registry
from tf_genai.devices import DeviceInfo
from tf_genai.layers import FastDropout, FusedBatchNormalization
from tf_genai.training import train


def _graph_ops(fn, *args) -> set[str]:
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_unfused_batch_norm_is_keras_batch_norm(policy):
    shape = (16, 5, 5, 3)
    x = tf.constant(np.random.default_rng(1).normal(1.0, 3.0, shape).astype(np.float32))
    with devices.mixed_precision(policy):
        stock = keras.layers.BatchNormalization(momentum=0.8)
        plain = FusedBatchNormalization(momentum=0.8)
        fused = FusedBatchNormalization(momentum=0.8)
        for layer in (stock, plain, fused):
            layer.build(shape)
    plain.fused = False

    def step(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

    y_s, g_s = step(stock)
    y_p, g_p = step(plain)
    # The plain variant runs Keras' code: the same numbers, bit for bit.
    np.testing.assert_array_equal(np.asarray(tf.cast(y_p, tf.float32)),
                                  np.asarray(tf.cast(y_s, tf.float32)))
    for a, b in zip(g_p, g_s):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(plain.moving_variance),
                                  np.asarray(stock.moving_variance))
    # ... and not the fused kernel, which the default variant does run.
    assert "FusedBatchNormV3" not in _graph_ops(lambda t: plain(t, training=True), x)
    assert "FusedBatchNormV3" in _graph_ops(lambda t: fused(t, training=True), x)


def test_unfused_dropout_draws_a_float_per_element_with_the_exact_rate():
    layer = FastDropout(0.3, seed=1)
    layer.fused = False
    assert layer.keep_probability == 0.7  # exact: no 16-bit rounding of the rate
    x = np.random.default_rng(0).uniform(0.5, 2.0, (64, 14, 14, 32)).astype(np.float32)
    y = np.asarray(layer(x, training=True))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.3 * 0.7 / kept.size)
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    flat = kept.reshape(-1).astype(np.float64)
    assert abs(np.corrcoef(flat[0::2], flat[1::2])[0, 1]) < 0.01
    # The gradient is the mask times the scale.
    xt = tf.constant(x[:4])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = layer(xt, training=True)
        total = tf.reduce_sum(out * 3.0)
    grad = np.asarray(tape.gradient(total, xt))
    np.testing.assert_allclose(grad, np.where(np.asarray(out) != 0, 3.0 / 0.7, 0.0), rtol=1e-6)
    # One float32 uniform per element, not 16-bit halves of 32-bit integers.
    ops = _graph_ops(lambda t: layer(t, training=True), tf.constant(x[:2]))
    assert "Bitcast" not in ops and "StatelessRandomUniformV2" in ops
    fast = FastDropout(0.3, seed=1)
    assert "Bitcast" in _graph_ops(lambda t: fast(t, training=True), tf.constant(x[:2]))
    # Seeded, and inference is the identity.
    again = FastDropout(0.3, seed=1)
    again.fused = False
    np.testing.assert_array_equal(np.asarray(again(x, training=True)), y)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_set_fused_layers_reaches_the_zoo_gan_and_leaves_config_and_saved_models_alone(
        tmp_path):
    net = registry.create("dcgan", image_shape=(8, 8, 1), seed=0)
    found = layers.fused_layers(net)
    kinds = {type(layer).__name__ for layer in found}
    assert kinds == {"FusedBatchNormalization", "FastDropout"}, kinds
    assert layers.set_fused_layers(net, False) == len(found)
    assert not any(layer.fused for layer in found)
    assert "fused" not in json.dumps(found[0].get_config())
    z = np.random.default_rng(0).standard_normal((4, net.latent_dim)).astype(np.float32)
    before = np.asarray(net.generator(z))
    net.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    np.testing.assert_array_equal(np.asarray(loaded.generator(z)), before)
    assert all(layer.fused for layer in layers.fused_layers(loaded))  # a lever, not state
    # A model without such layers (the VAE) has nothing for the lever to change; nor does a
    # dropout layer that drops nothing.
    assert layers.fused_layers(registry.create("vae", image_shape=(8, 8, 1), seed=0)) == []
    assert layers.set_fused_layers(keras.Sequential([FastDropout(0.0)]), False) == 0


def test_the_autotuner_offers_the_lever_only_for_models_with_fused_layers():
    lever = "fused_layers"
    for device in (BF16_CPU, DeviceInfo(kind="gpu", name="g", bf16=True, fp16=True)):
        tuner = autotune.Tuner({"model": "test"}, mode="retune", device=device)
        current = devices.training_options(device)
        assert current[lever] is True
        assert tuner._alternates(lever, current, 0.1) == []  # no fused layers in the model
        tuner._fused_layers = 4
        assert tuner._alternates(lever, current, 0.1) == [({**current, lever: False}, None)]
    summary = autotune.Decision(options={**current, lever: False}, source="probe", reason="r",
                                flags=current).summary()
    assert "unfused layers" in summary
    assert "unfused" not in autotune.Decision(options=current, source="probe", reason="r",
                                              flags=current).summary()


def test_train_applies_the_environment_choice_and_resume_fills_older_files(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("TF_GENAI_FUSED_LAYERS", "0")
    out = tmp_path / "run"
    net = train("dcgan", "digits", epochs=1, out_dir=out, verbose=0, plots=False,
                model_kwargs={"seed": 0}).model
    options = json.loads((out / "run.json").read_text())["training_options"]
    assert options["fused_layers"] is False
    assert options["autotune"]["fixed"]["fused_layers"] is False
    found = layers.fused_layers(net)
    assert found and not any(layer.fused for layer in found)
    monkeypatch.setenv("TF_GENAI_FUSED_LAYERS", "perhaps")
    with pytest.raises(Exception, match="TF_GENAI_FUSED_LAYERS must be 0 or 1"):
        devices.training_options(BF16_CPU)
    # A resume file written before the lever existed resumes with the fused layers, as then.
    monkeypatch.delenv("TF_GENAI_FUSED_LAYERS")
    resume = tmp_path / "autotune.json"
    resume.write_text(json.dumps({"options": {"mixed_precision_policy": "float32",
                                              "jit_compile": False,
                                              "steps_per_execution": 16}}))
    resumed = autotune.Tuner({"model": "test"}, resume_file=resume, device=BF16_CPU)
    assert resumed.decision.source == "resume"
    assert resumed.decision.options["fused_layers"] is True
