"""make_dataset: ranges of both scales, dynamic binarization, seeds, labels, batching."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_genai.data import binarize_once, load, make_dataset


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    x, y = load(mnist_dir, split="heldout")  # 2,000 real uint8 images
    return x, y


def _epoch(ds: tf.data.Dataset) -> list:
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in ds]


def test_unit_scale_equals_pixels_over_255(mnist):
    x, _ = mnist
    batches = _epoch(make_dataset(x, batch_size=500, shuffle=False))
    assert [b.shape for b in batches] == [(500, 28, 28, 1)] * 4
    out = np.concatenate(batches)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, x / 255.0, rtol=1e-6)


def test_symmetric_scale(mnist):
    x, _ = mnist
    out = np.concatenate(_epoch(make_dataset(x, batch_size=512, scale="symmetric", seed=1)))
    assert out.min() == -1.0 and out.max() == 1.0
    assert out.shape == (2000, 28, 28, 1)
    # Shuffled, but the same multiset of pixel values.
    np.testing.assert_allclose(np.sort(out.ravel()), np.sort(x.ravel() / 127.5 - 1.0), atol=1e-6)


def test_float_images_stay_float(tmp_path):
    x, _ = load("digits", split="heldout")  # float32 in [0, 1]
    out = np.concatenate(_epoch(make_dataset(x, shuffle=False, batch_size=100)))
    np.testing.assert_allclose(out, x)


def test_dynamic_binarization_values_seed_and_fresh_draws(mnist):
    x, _ = mnist
    x = x[:256]

    def two_epochs(seed):
        ds = make_dataset(x, batch_size=128, binarize=True, shuffle=False, seed=seed)
        return np.concatenate(_epoch(ds)), np.concatenate(_epoch(ds))

    first, second = two_epochs(seed=5)
    again_first, again_second = two_epochs(seed=5)
    other, _ = two_epochs(seed=6)
    assert set(np.unique(first)) == {0.0, 1.0}
    np.testing.assert_array_equal(first, again_first)  # reproducible from the seed
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)  # a fresh draw every epoch
    assert not np.array_equal(first, other)
    # Bernoulli(p): black pixels never fire, white ones always, the mean follows intensity.
    unit = x / 255.0
    assert first[unit == 0].max() == 0.0 and first[unit == 1].min() == 1.0
    assert abs(first.mean() - unit.mean()) < 0.01


def test_labels_are_passed_through_with_their_images():
    n = 300
    # Image i is a constant i % 256 and its label is i: any mismatch after shuffling shows.
    x = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None], (n, 4, 4, 1))
    y = np.arange(n)
    for binarize in (False, True):
        ds = make_dataset(x, y, batch_size=64, seed=3, binarize=binarize)
        assert ds.element_spec[1].dtype == tf.int32
        seen = []
        for images, labels in ds:
            images, labels = images.numpy(), labels.numpy()
            seen += list(labels)
            if not binarize:
                np.testing.assert_allclose(images[:, 0, 0, 0], (labels % 256) / 255.0, rtol=1e-6)
        assert sorted(seen) == list(range(n)) and seen != list(range(n))  # shuffled, complete


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    x = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)

    def order(ds):
        return np.concatenate(_epoch(ds))[:, 0, 0, 0].tolist()

    ds = make_dataset(x, batch_size=8, seed=0)
    epoch1, epoch2 = order(ds), order(ds)
    ds_again = make_dataset(x, batch_size=8, seed=0)
    assert order(ds_again) == epoch1 and order(ds_again) == epoch2
    assert epoch1 != epoch2 and sorted(epoch1) == sorted(epoch2)
    assert order(make_dataset(x, batch_size=8, seed=1)) != epoch1


def test_remainder_and_repeat(mnist):
    x, _ = mnist
    x = x[:300]
    assert [b.shape[0] for b in _epoch(make_dataset(x, batch_size=128))] == [128, 128, 44]
    dropped = _epoch(make_dataset(x, batch_size=128, drop_remainder=True))
    assert [b.shape[0] for b in dropped] == [128, 128]
    repeated = make_dataset(x, batch_size=128, repeat=True).take(7)
    assert [b.shape[0] for b in _epoch(repeated)] == [128] * 7  # crosses epoch boundaries


def test_dataset_trains_a_keras_model(mnist):
    import keras

    x, y = mnist
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(make_dataset(x, y, batch_size=128), epochs=2, verbose=0, shuffle=False)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_binarize_once_is_fixed_by_seed(mnist):
    x, _ = mnist
    a, b, c = binarize_once(x, seed=0), binarize_once(x, seed=0), binarize_once(x, seed=1)
    assert a.shape == x.shape and a.dtype == np.float32
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(a.mean() - (x / 255.0).mean()) < 0.01


def test_autotuning_model_thread_is_off_in_memory_and_streamed(tmp_path):
    """tf.data's autotuning thread made ending an iterator (every fit epoch) wait up to its next
    doubling wake-up (benchmarks/README.md, Findings). Both pipelines switch it off."""
    from PIL import Image

    from tf_genai.data.streaming import scan_folder, stream_dataset

    x = np.zeros((10, 4, 4, 1), np.uint8)
    for ds in (make_dataset(x, batch_size=4), make_dataset(x, batch_size=4, binarize=True),
               make_dataset(x, np.arange(10) % 2, batch_size=4, repeat=True)):
        assert ds.options().autotune.enabled is False
    for i in range(3):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"{i}.png")
    streamed = stream_dataset(scan_folder(tmp_path, split="all"), batch_size=2)
    assert streamed.options().autotune.enabled is False
    assert sum(int(b.shape[0]) for b in streamed) == 3  # and it still yields every image
