"""Mixed precision does not change what a model learns.

The same model (same seed, same data order) is trained in float32 and under each mixed policy;
the held-out losses must agree within a stated tolerance. The model is built and compiled
inside :func:`tf_genai.devices.mixed_precision`, as ``training.py`` does. ``mixed_float16`` runs
on CPU too (slowly): it checks the loss-scaling path (``optimizer.scale_loss``) of the models'
own ``train_step``s.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import tf_genai
from tf_genai import devices
from tf_genai.data import binarize_once, load, make_dataset

MIXED = ("mixed_bfloat16", "mixed_float16")
# Held-out VAE loss (nats per 8x8 image, ~27 after training): bfloat16 keeps 8 bits of
# mantissa (~0.4% per-value rounding), yet averaged over 359 images and 64 pixels the float32
# and mixed runs measured within 0.01% of each other after 6 epochs; 1% leaves room for other
# CPUs' kernels while a broken policy path (NaN, a loss summed in 16 bits) moves it further.
VAE_RELATIVE_TOLERANCE = 0.01
# GAN losses are ~0.7-1.4 nats; the first epoch's mean loss agrees to ~0.01 across policies.
GAN_ABSOLUTE_TOLERANCE = 0.1
TINY_VAE = dict(image_shape=(8, 8, 1), latent_dim=8, filters=(16, 32), hidden_units=(64,), seed=0)
TINY_DCGAN = dict(image_shape=(8, 8, 1), latent_dim=16, base_filters=16, seed=0)


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends with the float32 global policy, whatever it does."""
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def digits():
    train, _ = load("digits", split="train")  # (1438, 8, 8, 1) float32 in [0, 1]
    heldout, _ = load("digits", split="heldout")  # (359, 8, 8, 1)
    return train, binarize_once(heldout, seed=1)  # a fixed binarization: a fixed target


def _train_vae(policy: str, digits, epochs: int = 6) -> dict:
    train, heldout = digits
    keras.utils.set_random_seed(0)
    with devices.mixed_precision(policy):
        model = tf_genai.create("vae", **TINY_VAE)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), steps_per_execution=8)
    evaluate = lambda: model.evaluate(heldout, batch_size=len(heldout), verbose=0,  # noqa: E731
                                      return_dict=True)["loss"]
    before = evaluate()
    model.fit(make_dataset(train, batch_size=64, seed=0), epochs=epochs, verbose=0)
    return {"before": before, "after": evaluate(), "model": model}


def _train_dcgan(policy: str, digits) -> dict:
    train, _ = digits
    keras.utils.set_random_seed(0)
    with devices.mixed_precision(policy):
        model = tf_genai.create("dcgan", **TINY_DCGAN)
        model.compile(steps_per_execution=8)
    history = model.fit(make_dataset(train, batch_size=64, seed=0, scale="symmetric"),
                        epochs=1, verbose=0).history
    return {"d_loss": history["d_loss"][-1], "g_loss": history["g_loss"][-1], "model": model}


@pytest.fixture(scope="module")
def float32_vae(digits):
    keras.mixed_precision.set_global_policy("float32")
    return _train_vae("float32", digits)


@pytest.fixture(scope="module")
def float32_dcgan(digits):
    keras.mixed_precision.set_global_policy("float32")
    return _train_dcgan("float32", digits)


@pytest.mark.slow
@pytest.mark.parametrize("policy", MIXED)
def test_vae_heldout_loss_matches_float32(policy, digits, float32_vae):
    mixed = _train_vae(policy, digits)
    ref = float32_vae
    # Both runs learned something (so agreement is not two untrained models agreeing).
    assert ref["after"] < ref["before"] - 5.0
    assert mixed["after"] < mixed["before"] - 5.0
    assert math.isfinite(mixed["after"])
    assert abs(mixed["after"] - ref["after"]) <= VAE_RELATIVE_TOLERANCE * ref["after"], (
        f"{policy}: held-out loss {mixed['after']:.3f} vs float32 {ref['after']:.3f}"
    )
    model = mixed["model"]
    assert model.encoder.get_layer("conv_0").compute_dtype == policy.split("_")[1]
    # The Bernoulli output convolution computes in bfloat16 under mixed_bfloat16 only.
    expected = "bfloat16" if policy == "mixed_bfloat16" else "float32"
    assert _output_layer(model.decoder).compute_dtype == expected
    # Loss scaling: Keras wraps the VAE's optimizer under mixed_float16 only.
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")


def _output_layer(decoder):
    """The decoder's last layer with a kernel: the one that computes the raw outputs."""
    return next(layer for layer in reversed(decoder.layers) if hasattr(layer, "kernel"))


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
@pytest.mark.parametrize("policy", ("float32", *MIXED))
def test_decoder_output_layer_dtype_follows_the_likelihood(policy, architecture):
    """Only a Bernoulli decoder under mixed_bfloat16 computes its output layer in the policy
    dtype; logistic and Gaussian parameters, and mixed_float16, keep it float32. The outputs
    are float32 in every case."""
    net = dict(architecture=architecture, latent_dim=4, filters=(8,), hidden_units=(16,))
    with devices.mixed_precision(policy):
        for likelihood, shape in (("bernoulli", (8, 8, 1)), ("logistic", (8, 8, 3)),
                                  ("gaussian", (8, 8, 1))):
            model = tf_genai.create("vae", image_shape=shape, likelihood=likelihood, **net)
            expected = "bfloat16" if (policy, likelihood) == ("mixed_bfloat16",
                                                               "bernoulli") else "float32"
            assert _output_layer(model.decoder).compute_dtype == expected, (likelihood, policy)
            assert model.decoder.output.dtype == "float32"
            raw = model.decoder_logits(np.zeros((2, 4), "float32"))
            assert raw.dtype == "float32" and bool(np.isfinite(np.asarray(raw)).all())


@pytest.mark.slow
@pytest.mark.parametrize("policy", MIXED)
def test_dcgan_losses_match_float32(policy, digits, float32_dcgan):
    mixed = _train_dcgan(policy, digits)
    for key in ("d_loss", "g_loss"):
        assert np.isfinite(mixed[key]), f"{policy}: {key} is {mixed[key]}"
        assert abs(mixed[key] - float32_dcgan[key]) <= GAN_ABSOLUTE_TOLERANCE, (
            f"{policy}: {key} {mixed[key]:.4f} vs float32 {float32_dcgan[key]:.4f}"
        )
    model = mixed["model"]
    assert model.generator.get_layer("up_0").compute_dtype == policy.split("_")[1]
    for optimizer in (model.d_optimizer, model.g_optimizer):
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert scaled == (policy == "mixed_float16")


def test_policy_is_restored_after_a_failing_block():
    with pytest.raises(RuntimeError):
        with devices.mixed_precision("mixed_bfloat16"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.mixed_precision.global_policy().name == "float32"
