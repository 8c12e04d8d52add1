"""tf_genai.optimizers: the fused Adam update is Keras' Adam update, state and all."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_genai
from tf_genai import optimizers
from tf_genai.models.base import adam

SHAPES = [(7, 5), (5,), (3, 3, 2, 4)]


def _run(optimizer, steps=6, sparse=False, seed=0):
    """Apply ``steps`` seeded random gradients (in a tf.function, as fit does) and return the
    variables' values and the optimizer's slot values."""
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}")
                 for i, s in enumerate(SHAPES)]
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for _ in range(steps):
        grads = [tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES]
        if sparse:  # an Embedding-style gradient: rows 1 and 4 of the first variable only
            rows = tf.constant([1, 4])
            grads[0] = tf.IndexedSlices(tf.gather(grads[0], rows), rows, tf.constant(SHAPES[0]))
        apply(grads)
    return ([v.numpy() for v in variables],
            {v.path.split("/", 1)[-1]: v.numpy() for v in optimizer.variables})


# Six steps of size ~lr = 0.05 computed in another float32 order (the fused kernel forms
# lr_t * m / (sqrt(v) + eps) in one expression): measured differences up to 1.5e-6, 3e-5 of a
# step. A wrong update (a missing bias correction, beta_1 for beta_2) moves weights by ~1e-2.
def _assert_same(ours, theirs, rtol=1e-5, atol=1e-5):
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert ours[1].keys() == theirs[1].keys()  # same slot names: a backup restores either way
    for key in ours[1]:
        np.testing.assert_allclose(ours[1][key], theirs[1][key], rtol=rtol, atol=atol,
                                   err_msg=key)


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=0.05, beta_1=0.5),  # the DCGAN recipe at a large rate, to see differences
    dict(learning_rate=0.01, beta_1=0.0, beta_2=0.9, epsilon=1e-3),  # WGAN-GP's betas
    dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5)),
    dict(learning_rate=0.05, global_clipnorm=0.5),
    dict(learning_rate=0.05, amsgrad=True),  # no fused kernel: Keras' own update
])
def test_fused_adam_matches_keras_adam(kwargs):
    ours = _run(optimizers.Adam(**kwargs))
    theirs = _run(keras.optimizers.Adam(**kwargs))
    _assert_same(ours, theirs)
    # The weights did move by many float32 ulps (so agreement is not two no-ops agreeing).
    start = _run(keras.optimizers.SGD(0.0), steps=1)[0]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours[0], start)) > 1e-2


def test_fused_adamw_matches_keras_adamw():
    kwargs = dict(learning_rate=0.05, weight_decay=0.1, beta_1=0.5)
    _assert_same(_run(optimizers.AdamW(**kwargs)), _run(keras.optimizers.AdamW(**kwargs)))


def test_sparse_gradient_is_densified_like_keras():
    _assert_same(_run(optimizers.Adam(0.05), sparse=True),
                 _run(keras.optimizers.Adam(0.05), sparse=True))


def test_adam_recipe_builds_fused_optimizers_that_are_keras_adams():
    plain, decayed = adam(1e-3), adam(1e-3, weight_decay=0.01, beta_1=0.5)
    assert type(plain) is optimizers.Adam and isinstance(plain, keras.optimizers.Adam)
    assert type(decayed) is optimizers.AdamW and decayed.beta_1 == 0.5
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(decayed))
    assert type(restored) is optimizers.AdamW
    assert restored.get_config() == decayed.get_config()


def test_zoo_model_trains_and_reloads_with_the_fused_optimizer(tmp_path):
    """A .keras file keeps the fused optimizer and its slots, and training continues the same."""
    x = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    model = tf_genai.create("vae", image_shape=(8, 8, 1), latent_dim=4, filters=(8,),
                            hidden_units=(16,), seed=0)
    model.compile()
    assert type(model.optimizer) is optimizers.Adam
    model.fit(x, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is optimizers.Adam
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
