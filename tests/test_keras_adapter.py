"""Pins the Keras behaviours ``tf_genai/keras_adapter.py`` and the family contract rely on.

If a Keras release in the range ``setup.cfg`` allows changes one of them, these fail first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from tf_genai import keras_adapter

REPO = Path(__file__).resolve().parents[1]


def _tiny():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1), keras.layers.Dropout(0.5)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_start_fit_at_epoch_from_on_train_begin_skips_the_done_epochs():
    seen = []

    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            keras_adapter.start_fit_at_epoch(self.model, 2)

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    x = np.zeros((8, 3), "float32")
    history = _tiny().fit(x, x[:, :1], epochs=4, verbose=0, callbacks=[Resume()])
    assert seen == [2, 3] and len(history.history["loss"]) == 2


def test_seed_generator_states_are_the_variables_that_weights_files_omit():
    model = _tiny()
    states = keras_adapter.seed_generator_states(model)
    dropout = model.layers[-1]
    assert len(states) == 1 and states[0] is dropout.seed_generator.state
    assert all(s is not w for s in states for w in model.weights)


def test_keras_cache_dir_is_where_keras_downloads():
    # Keras resolves its home at import time from KERAS_HOME (else ~/.keras); our rule must agree.
    code = ("import keras.src.backend.config as c; from tf_genai.data.sources import "
            "keras_cache_dir; print(c.keras_home()); print(keras_cache_dir().parent)")
    for env in ({}, {"KERAS_HOME": "/tmp/tf_genai_keras_home_probe"}):
        full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
        if not env:
            full.pop("KERAS_HOME", None)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=full, cwd=REPO, timeout=120, check=True).stdout.split()
        assert os.path.realpath(out[-2]) == os.path.realpath(out[-1]), out


def test_fit_calls_the_symbolic_build_hook_under_a_strategy():
    """GenerativeModel skips Keras' _maybe_symbolic_build: it must be what fit calls."""
    import tensorflow as tf

    calls = []

    class Probe(keras.Model):
        def _maybe_symbolic_build(self, *args, **kwargs):
            calls.append(1)
            return super()._maybe_symbolic_build(*args, **kwargs)

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        inputs = keras.Input((3,))
        model = Probe(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), "float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert calls
