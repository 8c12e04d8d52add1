"""The float32_weight_gradients lever: tf_genai.layers.Conv2D / Conv2DTranspose under
mixed_bfloat16 take their kernel and bias gradients in float32 (issue 19, item 3).

Checked against the stock Keras layers and a float32 run of the same weights: same outputs,
weight gradients at least as close to float32 as the stock bf16 ones, the float32 backward-
weights op really in the graph, nothing changed outside training mode, in float32 models or
in a saved model; and the autotuner and tf-genai train handle the lever.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from test_autotune import BF16_CPU, own_cache  # noqa: F401 (autouse: own cache, no env levers)

from tf_genai import autotune, devices, layers
from tf_genai.devices import DeviceInfo
from tf_genai.training import train


def _net(policy: str, stock: bool = False) -> keras.Model:
    """conv (bias) -> transposed conv (no bias) -> transposed conv (bias), as the zoo GAN's
    discriminator and generator use them; the same weights for every policy and class."""
    conv = keras.layers.Conv2D if stock else layers.Conv2D
    conv_t = keras.layers.Conv2DTranspose if stock else layers.Conv2DTranspose
    with devices.mixed_precision(policy):
        keras.utils.set_random_seed(0)
        x = keras.Input((14, 14, 8))
        h = conv(16, 4, strides=2, padding="same", name="down")(x)
        h = conv_t(8, 4, strides=2, padding="same", use_bias=False, name="up")(h)
        h = conv_t(3, 3, strides=2, padding="valid", activation="tanh", name="out")(h)
        net = keras.Model(x, h)
    if not stock:
        assert layers.set_float32_weight_gradients(net, True) == 3
    return net


X = np.random.default_rng(1).standard_normal((32, 14, 14, 8)).astype(np.float32)


def _grads(net, training=True):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = net(x, training=training)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return y, tape.gradient(loss, net.trainable_variables)

    y, grads = step(tf.constant(X))
    ops = step.get_concrete_function(tf.TensorSpec(X.shape, tf.float32)).graph.get_operations()
    filter_grads = sorted(op.get_attr("T").name for op in ops
                          if op.type == "Conv2DBackpropFilter")
    return (np.asarray(tf.cast(y, tf.float32)), [np.asarray(g) for g in grads], filter_grads)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_same_outputs_and_float32_weight_gradients_closer_to_a_float32_run():
    y32, g32, _ = _grads(_net("float32", stock=True))
    y_stock, g_stock, ops_stock = _grads(_net("mixed_bfloat16", stock=True))
    y_lever, g_lever, ops_lever = _grads(_net("mixed_bfloat16"))
    # The graph: three filter gradients, bf16 in the stock layers, float32 with the lever.
    assert ops_stock == ["bfloat16"] * 3 and ops_lever == ["float32"] * 3
    # Forward: the same bf16 convolutions.
    np.testing.assert_allclose(y_lever, y_stock, rtol=0, atol=2e-2)
    assert _rel(y_lever, y32) < 0.02
    names = [v.path for v in _net("float32", stock=True).trainable_variables]
    assert len(names) == len(g_lever) == 5  # down kernel+bias, up kernel, out kernel+bias
    for name, lever, stock, ref in zip(names, g_lever, g_stock, g32):
        # Within bf16 precision of the float32 run, and no further from it than the stock
        # bf16 gradient (a bias gradient is a sum of many bf16 terms: the stock one is far off).
        assert _rel(lever, ref) < 0.03, name
        assert _rel(lever, ref) <= _rel(stock, ref) * 1.05 + 1e-4, name


def test_nothing_changes_in_inference_in_float32_or_with_the_lever_off():
    lever = _net("mixed_bfloat16")
    stock = _net("mixed_bfloat16", stock=True)
    y_lever, _, ops = _grads(lever, training=False)
    y_stock, _, _ = _grads(stock, training=False)
    np.testing.assert_array_equal(y_lever, y_stock)  # inference: Keras' own code, bit for bit
    assert ops == ["bfloat16"] * 3
    layers.set_float32_weight_gradients(lever, False)
    assert _grads(lever)[2] == ["bfloat16"] * 3
    # A float32 model: the lever has nothing to do.
    f32 = _net("float32")
    y, g, ops = _grads(f32)
    y_ref, g_ref, _ = _grads(_net("float32", stock=True))
    assert ops == ["float32"] * 3
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_saved_and_exported_models_hold_no_lever(tmp_path):
    net = _net("mixed_bfloat16")
    net.save(tmp_path / "net.keras")
    config = json.dumps(net.get_config())
    assert "float32_weight_gradients" not in config and "tf_genai>Conv2DTranspose" in json.dumps(
        keras.saving.serialize_keras_object(net))
    loaded = keras.saving.load_model(tmp_path / "net.keras")
    assert isinstance(loaded.get_layer("up"), layers.Conv2DTranspose)
    assert loaded.get_layer("up").float32_weight_gradients is False  # a lever, not state
    np.testing.assert_array_equal(np.asarray(loaded(X)), np.asarray(net(X)))
    # The serving graph is the inference graph: no custom-gradient op in it.
    net.export(tmp_path / "saved", format="tf_saved_model", verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    serve = restored.signatures["serving_default"]
    np.testing.assert_array_equal(next(iter(serve(tf.constant(X)).values())).numpy(),
                                  np.asarray(net(X)))
    graph_def = serve.graph.as_graph_def()
    ops = {node.op for node in graph_def.node} | {
        node.op for function in graph_def.library.function for node in function.node_def}
    assert {"Conv2D", "Conv2DBackpropInput"} <= ops  # the convolutions are in what was read
    assert "IdentityN" not in ops  # tf.custom_gradient's marker is not


def test_the_autotuner_offers_the_lever_only_where_it_can_matter():
    tuner = autotune.Tuner({"model": "test"}, mode="retune", device=BF16_CPU)
    bf16 = {**devices.training_options(BF16_CPU)}
    assert bf16["mixed_precision_policy"] == "mixed_bfloat16"
    lever = "float32_weight_gradients"
    assert tuner._alternates(lever, bf16, 0.1) == []  # no conv layers in the model
    tuner._conv_layers = 3
    assert tuner._alternates(lever, bf16, 0.1) == [({**bf16, lever: True}, None)]
    assert tuner._alternates(lever, {**bf16, "mixed_precision_policy": "float32"}, 0.1) == []
    gpu = autotune.Tuner({"model": "test"}, mode="retune",
                         device=DeviceInfo(kind="gpu", name="g", bf16=True, fp16=True))
    gpu._conv_layers = 3
    assert gpu._alternates(lever, bf16, 0.1) == []
    assert "float32 weight gradients" in autotune.Decision(
        options={**bf16, lever: True}, source="probe", reason="r", flags=bf16).summary()


def test_train_applies_the_environment_choice_and_resume_fills_older_files(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("TF_GENAI_POLICY", "mixed_bfloat16")
    monkeypatch.setenv("TF_GENAI_FLOAT32_WEIGHT_GRADIENTS", "1")
    out = tmp_path / "run"
    kwargs = dict(filters=(8, 16), hidden_units=(16,), latent_dim=2)
    net = train("vae", "digits", epochs=1, out_dir=out, verbose=0, model_kwargs=kwargs).model
    options = json.loads((out / "run.json").read_text())["training_options"]
    assert options["float32_weight_gradients"] is True
    assert options["autotune"]["fixed"]["float32_weight_gradients"] is True
    convs = layers.weight_gradient_layers(net)
    assert convs and all(layer.float32_weight_gradients for layer in convs)
    monkeypatch.setenv("TF_GENAI_FLOAT32_WEIGHT_GRADIENTS", "maybe")
    with pytest.raises(Exception, match="TF_GENAI_FLOAT32_WEIGHT_GRADIENTS must be 0 or 1"):
        devices.training_options(BF16_CPU)
    # A resume file written before the lever existed resumes with it off.
    resume = tmp_path / "autotune.json"
    resume.write_text(json.dumps({"options": {"mixed_precision_policy": "float32",
                                              "jit_compile": False,
                                              "steps_per_execution": 16}}))
    monkeypatch.delenv("TF_GENAI_FLOAT32_WEIGHT_GRADIENTS")
    resumed = autotune.Tuner({"model": "test"}, resume_file=resume, device=BF16_CPU)
    assert resumed.decision.source == "resume"
    assert resumed.decision.options["float32_weight_gradients"] is False
