"""The GAN family: separate updates, training/inference modes, fit, save/load, mixed precision."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tf_genai import registry
from tf_genai.errors import ConfigError, DataError
from tf_genai.layers import FastDropout
from tf_genai.models.gan import GAN

ZOO = ["gan", "dcgan", "wgan_gp", "cgan", "sngan"]
SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def digits():
    """The first 64 scikit-learn digits as (images in [-1, 1] (64, 8, 8, 1), int labels)."""
    d = load_digits()
    images = (d.images[:64] / 16.0 * 2.0 - 1.0).astype(np.float32)[..., None]
    return images, d.target[:64].astype(np.int32)


def small(name: str, **kwargs) -> GAN:
    """A small zoo model on 8x8 images, compiled with the defaults."""
    model = registry.create(name, image_shape=SHAPE, latent_dim=8, base_filters=8, **kwargs)
    model.compile()
    return model


def snapshot(network: keras.Model) -> list[np.ndarray]:
    """Every weight of a network: trainable ones and non-trainable ones (BN statistics)."""
    return [np.array(w) for w in network.weights]


def changed(before: list[np.ndarray], network: keras.Model) -> list[bool]:
    return [not np.array_equal(b, np.array(w)) for b, w in zip(before, network.weights)]


def test_zoo_names_share_one_class_with_the_documented_attributes():
    for name in ZOO:
        entry = registry.entry(name)
        assert entry.cls is GAN and entry.family == "gan"
    m = registry.create("dcgan")
    assert (m.family, m.data_range, m.binarize) == ("gan", "symmetric", False)
    assert m.image_shape == (28, 28, 1) and m.latent_dim == 100 and m.num_classes is None
    assert isinstance(m.generator, keras.Model) and isinstance(m.discriminator, keras.Model)
    assert registry.create("cgan").num_classes == 10


def test_seed_mlp_architecture_is_the_corrected_one():
    m = registry.create("gan")
    dense_g = [l.units for l in m.generator.layers if isinstance(l, keras.layers.Dense)]
    dense_d = [l.units for l in m.discriminator.layers if isinstance(l, keras.layers.Dense)]
    assert dense_g == [256, 512, 1024, 784] and dense_d == [1024, 512, 256, 1]
    assert m.generator.output_shape == (None, 28, 28, 1)
    # The discriminator outputs logits: no sigmoid anywhere, so outputs can leave [0, 1].
    activations = [getattr(l, "activation", None) for l in m.discriminator.layers]
    assert keras.activations.sigmoid not in activations
    x = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    m.discriminator.layers[-1].bias.assign([5.0])
    assert np.asarray(m.discriminator(x)).min() > 1.0
    rates = [l.rate for l in m.discriminator.layers if isinstance(l, FastDropout)]
    assert rates == [0.3, 0.3, 0.3]


@pytest.mark.parametrize("name", ["dcgan", "sngan"])
@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3), (30, 30, 1),
                                   (5, 7, 2)])
def test_conv_networks_build_for_any_image_shape(name, shape):
    m = registry.create(name, image_shape=shape, latent_dim=4, base_filters=4,
                        generator_filters=4)
    z = np.zeros((2, 4), np.float32)
    images = np.asarray(m.generate(z))
    assert images.shape == (2, *shape)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert m.discriminator.output_shape == (None, 1)


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_conv_networks_take_fully_connected_hidden_layers(name):
    """generator_hidden / discriminator_hidden put a dense layer before G's projection and
    after D's convolutions (InfoGAN's MNIST networks); 0 leaves them out."""
    shape = (10, 12, 2)
    m = registry.create(name, image_shape=shape, latent_dim=4, base_filters=4,
                        generator_hidden=24, discriminator_hidden=20)

    def dense_units(net):
        return [l.units for l in net.layers if isinstance(l, keras.layers.Dense)]

    n_up = 2  # 10x12 -> a 3x3 map doubled twice, cropped
    assert dense_units(m.generator) == [24, 3 * 3 * 16]
    assert dense_units(m.ema_generator) == dense_units(m.generator)
    assert dense_units(m.discriminator) == [20, 1]
    assert m.discriminator.get_layer("hidden").input.shape[-1] == 3 * 3 * 4 * 2 ** (n_up - 1)
    plain = registry.create(name, image_shape=shape, latent_dim=4, base_filters=4,
                            generator_hidden=0, discriminator_hidden=0)
    assert dense_units(plain.generator) == [3 * 3 * 16] and dense_units(plain.discriminator) == [1]
    defaults = registry.create(name, image_shape=shape, latent_dim=4, base_filters=4)
    expected = {"dcgan": ([256, 144], [1024, 1]), "cgan": ([144], [1])}[name]
    assert (dense_units(defaults.generator), dense_units(defaults.discriminator)) == expected
    labels = {"labels": np.arange(3) % 10} if name == "cgan" else {}
    images = np.asarray(m.generate(np.zeros((3, 4), np.float32), **labels))
    assert images.shape == (3, *shape)
    config = m.get_config()
    assert (config["generator_hidden"], config["discriminator_hidden"]) == (24, 20)
    assert dense_units(GAN.from_config(config).generator) == [24, 3 * 3 * 16]


@pytest.mark.parametrize("name", ZOO)
def test_tiny_fit_on_digits_gives_finite_metrics(name, digits):
    images, labels = digits
    m = small(name, **({"n_critic": 2} if name == "wgan_gp" else {}))  # 2 critic steps: faster
    history = m.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    expected = {"d_loss", "g_loss", "d_loss_real", "d_loss_fake"} | (
        {"gp"} if name == "wgan_gp" else set()
    )
    assert set(history.history) == expected
    for key, values in history.history.items():
        assert all(math.isfinite(v) for v in values), (name, key, values)
    assert int(m.g_optimizer.iterations) == 4
    assert int(m.d_optimizer.iterations) == 4 * m.n_critic
    samples = np.asarray(m.sample(6, seed=1))
    assert samples.shape == (6, *SHAPE) and np.all(np.isfinite(samples))
    if name in ("wgan_gp", "cgan"):  # test_step with the penalty and with labels
        evaluation = m.evaluate(images, labels, batch_size=32, verbose=0, return_dict=True)
        assert set(evaluation) == expected
        assert all(math.isfinite(v) for v in evaluation.values())


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_discriminator_step_changes_only_discriminator_weights(name, digits):
    images, labels = digits
    m = small(name)
    labels = labels[:16] if m.num_classes else None
    g0, d0 = snapshot(m.generator), snapshot(m.discriminator)
    ema0, updates0 = snapshot(m.ema_generator), float(m.ema_updates)
    m._d_step(images[:16], labels)
    assert not any(changed(g0, m.generator))  # including the generator's BN statistics
    assert not any(changed(ema0, m.ema_generator)) and float(m.ema_updates) == updates0
    d_changed = changed(d0, m.discriminator)
    trainable_ids = {id(v) for v in m.discriminator.trainable_weights}
    trainable = [id(w) in trainable_ids for w in m.discriminator.weights]
    assert all(c for c, t in zip(d_changed, trainable) if t)


@pytest.mark.parametrize("name", ["gan", "dcgan"])
def test_generator_step_changes_only_generator_weights(name):
    m = small(name)
    g0, d0 = snapshot(m.generator), snapshot(m.discriminator)
    m._g_update(*m._generate_on_tape(16))  # one generator update on fresh noise
    assert not any(changed(d0, m.discriminator))
    g_changed = changed(g0, m.generator)
    assert all(g_changed)  # every kernel, bias, BN gamma/beta and BN moving statistic moved


@pytest.mark.parametrize("name", ["dcgan", "cgan"])
def test_train_step_shares_one_generator_pass_with_exact_gradients(name, digits):
    """train_step = a D update on G(z), then a G update on the same z against the updated D.

    The reference recomputes the generator pass for the generator update; the shared pass must
    give the same weights. It fails if the generator update saw the discriminator before its
    update, drew other noise, or lost the gradient through the recorded generator pass.
    """
    import tensorflow as tf

    images, labels = digits
    a, b = small(name, ema_decay=0.0), small(name, ema_decay=0.0)  # same seed: same everything
    real = images[:16]
    lab = labels[:16] if a.num_classes else None
    a.train_step(real if lab is None else (real, lab))

    lab = None if lab is None else tf.constant(lab)
    z = b._noise(16)
    inputs = b._gen_inputs(z, lab)
    fake = b.generator(inputs, training=True)
    d_before = snapshot(b.discriminator)
    b._d_step(real, lab, fake=fake)
    assert any(changed(d_before, b.discriminator))
    with tf.GradientTape() as tape:
        again = b.generator(inputs, training=True)  # a fresh pass: the same fakes
        loss = b._g_losses(again, lab, training=True)["g_loss"]
    np.testing.assert_array_equal(np.asarray(again), np.asarray(fake))
    variables = b.generator.trainable_variables
    b.g_optimizer.apply(tape.gradient(loss, variables), variables)

    for network in ("generator", "discriminator"):
        for wa, wb in zip(getattr(a, network).trainable_weights,
                          getattr(b, network).trainable_weights):
            np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name} {network} {wa.path}")
    assert int(a.g_optimizer.iterations) == int(a.d_optimizer.iterations) == 1


def test_train_step_runs_training_mode_and_sample_runs_inference_mode(digits):
    images, _ = digits
    m = small("dcgan")  # its discriminator has dropout 0.3, as cgan and gan do
    bn = [l for l in m.generator.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    dropout = [l for l in m.discriminator.layers if isinstance(l, FastDropout)][0]
    moving0 = np.array(bn.moving_mean)
    rng0 = np.array(dropout.seed_generator.state)

    a = np.asarray(m.sample(8, seed=3))
    b = np.asarray(m.sample(8, seed=3))
    np.testing.assert_array_equal(a, b)  # no dropout, no batch statistics, same noise
    assert not np.array_equal(a, np.asarray(m.sample(8, seed=4)))
    np.testing.assert_array_equal(np.array(bn.moving_mean), moving0)  # sampling updates no BN
    np.testing.assert_array_equal(np.array(dropout.seed_generator.state), rng0)

    # A training-mode generator call uses batch statistics, so it differs from generate().
    z = np.random.default_rng(0).normal(size=(8, m.latent_dim)).astype(np.float32)
    assert not np.allclose(np.asarray(m.generator(z, training=True)), np.asarray(m.generate(z)))
    # The discriminator's dropout is live in training calls only.
    d1, d2 = (np.asarray(m.discriminator(images[:8], training=True)) for _ in range(2))
    assert not np.allclose(d1, d2)
    i1, i2 = (np.asarray(m.discriminator(images[:8], training=False)) for _ in range(2))
    np.testing.assert_array_equal(i1, i2)

    rng1 = np.array(dropout.seed_generator.state)
    m.fit(images, batch_size=16, epochs=1, verbose=0)
    assert not np.array_equal(np.array(bn.moving_mean), moving0)  # G trained in training mode
    assert not np.array_equal(np.array(dropout.seed_generator.state), rng1)  # D dropout was live


@pytest.mark.parametrize("name", ["dcgan", "sngan"])  # sngan: spectral normalisation's u too
def test_the_config_seed_fixes_weights_and_draws(name):
    m = small(name)
    a, b = np.asarray(m.sample(4)), np.asarray(m.sample(4))
    assert not np.array_equal(a, b)  # successive draws from the model's seed generator
    again = small(name)  # same config: same initial weights, same draws
    for w1, w2 in zip(m.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(w1), np.asarray(w2), err_msg=w1.path)
    np.testing.assert_array_equal(np.asarray(again.sample(4)), a)
    other = small(name, seed=5)
    first = [np.asarray(n.generator.weights[0]) for n in (m, other)]
    assert not np.array_equal(*first)
    assert not np.array_equal(np.asarray(other.sample(4)), a)


@pytest.mark.parametrize("name", ["dcgan", "gan"])
def test_generator_weight_average_follows_its_recurrence(name, digits):
    """After each generator step every averaged weight is d a + (1 - d) w, d warming up."""
    images, _ = digits
    m = small(name, ema_decay=0.9)
    expected = snapshot(m.generator)  # the average starts as a copy of the generator
    for w, e in zip(m.ema_generator.weights, expected):
        np.testing.assert_array_equal(np.asarray(w), e)
    for t in range(4):
        m.train_step(images[16 * t:16 * (t + 1)])
        decay = min(0.9, (1 + t) / (10 + t))  # 0.1, 0.18, 0.25, 0.31: the warm-up rules
        expected = [decay * e + (1 - decay) * g for e, g in zip(expected, snapshot(m.generator))]
        assert float(m.ema_updates) == t + 1
    for w, e in zip(m.ema_generator.weights, expected):  # BN moving statistics included
        np.testing.assert_allclose(np.asarray(w), e, rtol=1e-5, atol=1e-6)
    # The average lags the trained generator: they differ after training.
    assert any(changed(snapshot(m.ema_generator), m.generator))
    assert m.ema_generator.trainable_weights == []  # no gradient or optimizer ever moves it


def test_sampling_uses_the_averaged_generator_and_training_the_trained_one():
    m = small("dcgan")
    z = np.random.default_rng(0).normal(size=(4, m.latent_dim)).astype(np.float32)
    assert m.sampling_generator is m.ema_generator
    for w in m.ema_generator.weights[:2]:  # the projection kernel and its batch-norm gamma
        w.assign(np.asarray(w) + 0.5)  # make the average differ from the generator
    averaged = np.asarray(m.ema_generator(z, training=False))
    np.testing.assert_array_equal(np.asarray(m.generate(z)), averaged)
    np.testing.assert_array_equal(np.asarray(m(z)), averaged)
    assert not np.allclose(np.asarray(m.generator(z, training=False)), averaged)
    np.testing.assert_array_equal(  # training-mode call: the trained generator, batch statistics
        np.asarray(m(z, training=True)), np.asarray(m.generator(z, training=True)))
    plain = small("dcgan", ema_decay=0.0)
    assert plain.ema_generator is None and plain.sampling_generator is plain.generator
    np.testing.assert_array_equal(
        np.asarray(plain.generate(z)), np.asarray(plain.generator(z, training=False)))
    assert len(plain.weights) < len(m.weights)
    plain.compile()
    plain._g_update(*plain._generate_on_tape(8))  # trains without an average to update


def test_conditional_gan_labels(digits):
    images, labels = digits
    m = small("cgan")
    z = np.random.default_rng(0).normal(size=(4, m.latent_dim)).astype(np.float32)
    with pytest.raises(DataError, match="needs labels"):
        m.generate(z)
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        m.generate(z, np.array([0, 1, 2, 10]))
    # The label changes the image.
    assert not np.allclose(np.asarray(m.generate(z, [1] * 4)), np.asarray(m.generate(z, [7] * 4)))
    # Sampling without labels cycles through the classes: equal to explicit 0, 1, ..., 9, 0, 1.
    cycled = np.asarray(m.sample(12, seed=2))
    explicit = np.asarray(m.sample(12, seed=2, labels=np.arange(12) % 10))
    np.testing.assert_array_equal(cycled, explicit)
    with pytest.raises(DataError, match="needs labels"):
        m.fit(images, batch_size=16, epochs=1, verbose=0)


def test_config_round_trip_and_bad_arguments():
    m = registry.create("wgan_gp", image_shape=(12, 10, 3), latent_dim=7, label_smoothing=0.1)
    config = m.get_config()
    assert config["loss"] == "wasserstein" and config["gp_weight"] == 10.0
    assert config["n_critic"] == 5 and config["image_shape"] == [12, 10, 3]
    clone = GAN.from_config(config)
    assert clone.get_config() == config
    assert [w.shape for w in clone.weights] == [w.shape for w in m.weights]
    with pytest.raises(ConfigError, match="unknown GAN loss"):
        GAN(loss="bce")
    with pytest.raises(ConfigError, match="architecture"):
        GAN(architecture="transformer")
    with pytest.raises(ConfigError):
        GAN(image_shape=(8, 8))
    with pytest.raises(ConfigError, match="label_smoothing"):
        GAN(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        GAN(ema_decay=1.0)
    with pytest.raises(ConfigError, match="generator_filters"):
        GAN(generator_filters=0)
    with pytest.raises(ConfigError, match="discriminator_hidden"):
        GAN(discriminator_hidden=-1)
    with pytest.raises(ConfigError, match="mlp"):
        GAN(architecture="mlp", generator_hidden=64)
    # The generator is twice the discriminator's width unless told otherwise.
    assert config["generator_filters"] == 2 * config["base_filters"] == 64
    narrow = GAN(image_shape=(28, 28, 1), base_filters=8, generator_filters=12)
    convs = [l.filters for l in narrow.generator.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert convs == [12, 1]  # 7x7x24 -> 14x14x12 -> 28x28x1
    assert [l.filters for l in narrow.discriminator.layers
            if isinstance(l, keras.layers.Conv2D)] == [8, 16]
    assert config["ema_decay"] == 0.999
    with pytest.raises(ConfigError, match="dcgan"):
        registry.create("dcgan", not_an_argument=1)


def test_compile_defaults_and_loss_choice():
    m = registry.create("dcgan", image_shape=SHAPE)
    m.compile()
    for opt in (m.d_optimizer, m.g_optimizer):
        assert isinstance(opt, keras.optimizers.Adam)
        assert float(opt.learning_rate) == pytest.approx(2e-4) and opt.beta_1 == 0.5
    assert m.d_optimizer is not m.g_optimizer
    m.compile(loss="least_squares")
    assert m.get_config()["loss"] == "least_squares"
    with pytest.raises(ConfigError):
        m.compile(loss="nope")
    uncompiled = registry.create("dcgan", image_shape=SHAPE)
    with pytest.raises(ConfigError, match="compile"):
        uncompiled._d_step(np.zeros((4, *SHAPE), np.float32))


def test_keras_save_and_load_restores_networks_optimizers_and_loss(digits, tmp_path):
    images, labels = digits
    m = small("cgan")
    m.compile(loss="hinge")
    m.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "cgan.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GAN) and loaded.get_config() == m.get_config()
    assert loaded.loss_name == "hinge"
    z = np.random.default_rng(0).normal(size=(5, m.latent_dim)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(loaded.generate(z, np.arange(5))), np.asarray(m.generate(z, np.arange(5)))
    )
    for a, b in [(m.d_optimizer, loaded.d_optimizer), (m.g_optimizer, loaded.g_optimizer)]:
        assert int(b.iterations) == int(a.iterations) == 4
        assert len(a.variables) == len(b.variables) > 2
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    # Every weight comes back: both networks, the generator average and its update count.
    assert len(loaded.weights) == len(m.weights)
    for wa, wb in zip(m.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb))
    assert float(loaded.ema_updates) == 4.0
    loaded.fit(images, labels, batch_size=16, epochs=1, verbose=0)  # the train_step came back
    assert int(loaded.g_optimizer.iterations) == 8 and float(loaded.ema_updates) == 8.0

    untrained = registry.create("dcgan", image_shape=SHAPE)
    untrained.save(tmp_path / "untrained.keras")
    again = keras.saving.load_model(tmp_path / "untrained.keras")
    np.testing.assert_array_equal(
        np.asarray(again.sample(3, seed=0)), np.asarray(untrained.sample(3, seed=0))
    )


def test_mixed_float16_wraps_the_optimizers_and_trains(digits):
    images, _ = digits
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        m = small("wgan_gp", n_critic=1)
        assert isinstance(m.d_optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(m.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert m.generator.layers[2].compute_dtype == "float16"
        g0 = snapshot(m.generator)
        history = m.fit(images[:32], batch_size=16, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for values in history.history.values():
        assert all(math.isfinite(v) for v in values)
    assert any(changed(g0, m.generator))  # the loss scale did not swallow every update
    assert np.asarray(m.sample(2, seed=0)).dtype == np.float32


# Two mirrored CPU replicas train dcgan, wgan_gp (and every other zoo model) like one device:
# tests/test_distribute.py (one seeded epoch through training.train, Adam, dropout on).


def test_wgan_gp_uses_the_papers_optimizer():
    """Review finding 6.7: Gulrajani et al.'s Algorithm 1 uses Adam(1e-4, beta_1=0, beta_2=0.9);
    DCGAN's Adam(2e-4, beta_1=0.5) stays the default of the other GANs."""
    wgan = registry.create("wgan_gp", image_shape=SHAPE)
    wgan.compile()
    for optimizer in (wgan.d_optimizer, wgan.g_optimizer):
        assert math.isclose(float(optimizer.learning_rate.numpy()), 1e-4, rel_tol=1e-6)
        assert (optimizer.beta_1, optimizer.beta_2) == (0.0, 0.9)
    dcgan = registry.create("dcgan", image_shape=SHAPE)
    dcgan.compile()
    assert math.isclose(float(dcgan.d_optimizer.learning_rate.numpy()), 2e-4, rel_tol=1e-6)
    assert (dcgan.d_optimizer.beta_1, dcgan.d_optimizer.beta_2) == (0.5, 0.999)


# ------------------------------------------------------------ the resnet (SNGAN) networks


def test_resnet_networks_are_sngans():
    """32x32: G from 4x4 through 3 upsampling blocks; D with 2 downsampling blocks to 8x8 and
    2 more, every convolution and the logit spectrally normalised, no batch norm in D; the
    sum over positions (logits scale with the map's area)."""
    from tf_genai.layers import SpectralNormalization

    m = registry.create("sngan", image_shape=(32, 32, 3))
    config = m.get_config()
    assert (config["architecture"], config["loss"], config["base_filters"],
            config["generator_filters"], config["dropout"]) == ("resnet", "hinge", 64, 64, 0.0)
    assert m.generator.get_layer("to_map").output.shape[1:] == (4, 4, 64)
    adds = [l for l in m.generator.layers if isinstance(l, keras.layers.Add)]
    assert [tuple(l.output.shape[1:3]) for l in adds] == [(8, 8), (16, 16), (32, 32)]
    d_layers = m.discriminator.layers
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in d_layers)
    assert not any(isinstance(l, FastDropout) for l in d_layers)
    weighted = [l for l in d_layers if l.weights and not isinstance(l, SpectralNormalization)]
    assert weighted == []  # every layer with weights is spectrally normalised
    d_adds = [l for l in d_layers if isinstance(l, keras.layers.Add)]
    assert [tuple(l.output.shape[1:3]) for l in d_adds] == [(16, 16), (8, 8), (8, 8), (8, 8)]
    assert m.discriminator.get_layer("sum_pool").scale == 64.0
    with pytest.raises(ConfigError, match="resnet networks have none"):
        registry.create("sngan", generator_hidden=8)
    # Other architectures keep DCGAN's dropout unless told otherwise.
    assert registry.create("dcgan", image_shape=SHAPE).dropout == 0.3


def test_resnet_generator_step_changes_no_discriminator_weight():
    """Spectral normalisation that rewrote W on each training call (Keras' own layer) would
    change the discriminator in the generator's update; only the power iteration's u moves."""
    m = small("sngan", generator_filters=8)
    d0 = snapshot(m.discriminator)
    m._g_update(*m._generate_on_tape(16))
    moved = [w.path for w, c in zip(m.discriminator.weights, changed(d0, m.discriminator)) if c]
    assert moved and all(path.endswith("vector_u") for path in moved), moved


def test_conditional_resnet_discriminator_projects_the_label(digits):
    images, labels = digits
    m = small("sngan", num_classes=10, generator_filters=8)
    assert m.discriminator.get_layer("projection") is not None
    x = images[:4]
    a = np.asarray(m.discriminator([x, np.zeros(4, np.int32)]))
    b = np.asarray(m.discriminator([x, np.full(4, 3, np.int32)]))
    assert not np.allclose(a, b)  # the label moves the logit
    history = m.fit(images, labels, batch_size=16, epochs=1, verbose=0).history
    assert all(math.isfinite(v[-1]) for v in history.values())


# ------------------------------------------------------------ differentiable augmentation

POLICY = "color,translation,cutout"


def test_augmentation_kwargs_are_checked_and_in_the_config():
    m = small("dcgan", augment=" colour,cutout", augment_strength=0.5)
    config = m.get_config()
    assert (config["augment"], config["augment_strength"]) == ("color,cutout", 0.5)
    assert GAN.from_config(config).get_config() == config
    assert small("dcgan").get_config()["augment"] == ""  # off unless asked (training decides)
    assert m.capabilities.augments
    with pytest.raises(ConfigError, match="policy"):
        small("dcgan", augment="rotate")
    with pytest.raises(ConfigError, match="strength"):
        small("dcgan", augment=POLICY, augment_strength=2.0)


def _losses(model, real, fake):
    """The D and G loss terms (training mode) on fixed real and fake batches."""
    terms = model._d_losses(real, fake, None, training=True)
    terms.update(model._g_losses(fake, None, training=True))
    return {k: float(v) for k, v in terms.items()}


def test_real_and_fake_both_go_through_the_policy_in_both_updates(digits):
    """Same weights, same batches: with a policy every term the discriminator computes changes
    (its real half, its fake half, and the generator's loss), so both halves of the D update
    and the G update see augmented images; dropout off, so nothing else is random."""
    images, _ = digits
    real = images[:16]
    fake = np.asarray(small("dcgan").generator(np.random.default_rng(0).normal(
        size=(16, 8)).astype(np.float32)))
    plain = _losses(small("dcgan", dropout=0.0), real, fake)
    augmented = _losses(small("dcgan", dropout=0.0, augment=POLICY), real, fake)
    for key in ("d_loss_real", "d_loss_fake", "g_loss"):
        assert augmented[key] != pytest.approx(plain[key], rel=1e-4), key
    # Strength 0 is the identity, draws and all: the same losses as no policy, bit for bit.
    zero = _losses(small("dcgan", dropout=0.0, augment=POLICY, augment_strength=0.0), real, fake)
    assert zero == plain
    # test_step's terms (training=False) are never augmented.
    m = small("dcgan", dropout=0.0, augment=POLICY)
    assert float(m._d_losses(real, fake, None, training=False)["d_loss_real"]) == pytest.approx(
        float(small("dcgan", dropout=0.0)._d_losses(real, fake, None, False)["d_loss_real"]))


def test_generator_gradient_flows_through_the_augmentation():
    """The G update differentiates through the augmentation: every generator weight gets a
    finite, non-zero gradient, and it differs from the unaugmented gradient."""
    import tensorflow as tf

    def gradients(model):
        z = tf.constant(np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32))
        with tf.GradientTape() as tape:
            fake = model.generator(z, training=True)
            loss = model._g_losses(fake, None, training=True)["g_loss"]
        return tape.gradient(loss, model.generator.trainable_variables)

    augmented = gradients(small("sngan", augment=POLICY, generator_filters=8))
    plain = gradients(small("sngan", generator_filters=8))
    for g, p in zip(augmented, plain):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.any(g != 0)
    assert any(not np.allclose(np.asarray(g), np.asarray(p)) for g, p in zip(augmented, plain))


def test_augmented_training_is_seeded_by_the_model(digits):
    """Same config: bit-identical weights after training; another seed: others. The draws
    come from the model's own seed generator."""
    images, _ = digits

    def trained(seed, augment=POLICY):
        m = small("dcgan", augment=augment, dropout=0.0, seed=seed, ema_decay=0.0)
        state0 = np.array(m.seed_generator.state)
        m.fit(images[:32], batch_size=16, epochs=1, verbose=0, shuffle=False)
        draws = np.array(m.seed_generator.state) - state0
        return [np.asarray(w) for w in m.weights], draws

    (a, draws), (b, _), (c, _) = trained(0), trained(0), trained(1)
    _, plain_draws = trained(0, augment="")
    assert draws.sum() > plain_draws.sum() > 0  # the augmentation's draws are the model's
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_sngan_trains_under_mixed_bfloat16(digits):
    """Convolutions in bfloat16, the power iteration and the logits in float32."""
    from tf_genai import devices

    images, _ = digits
    with devices.mixed_precision("mixed_bfloat16"):
        m = small("sngan", generator_filters=8, augment=POLICY)
    wrapper = m.discriminator.get_layer("sn_block_0_conv_0")
    assert wrapper.layer.compute_dtype == "bfloat16"
    assert wrapper.vector_u.dtype == "float32" and wrapper.kernel.dtype == "float32"
    assert m.discriminator.output.dtype == "float32"
    history = m.fit(images[:32], batch_size=16, epochs=1, verbose=0).history
    assert all(math.isfinite(v[-1]) for v in history.values()), history
