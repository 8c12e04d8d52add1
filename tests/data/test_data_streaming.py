"""Streaming input (tf_genai.data.streaming): files -> tf.data, equal to the in-memory loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tf_genai.data import default_split_indices, load
from tf_genai.data.streaming import scan_folder, scan_tfrecords, stream_dataset, write_tfrecords
from tf_genai.errors import ConfigError, DataError


def _collect(ds):
    images, labels = [], []
    for batch in ds:
        if isinstance(batch, tuple):
            images.append(batch[0].numpy())
            labels.append(batch[1].numpy())
        else:
            images.append(batch.numpy())
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


def _class_folder(root: Path, per_class: int = 9, classes: int = 3, size=(8, 10)) -> Path:
    """Gray PNGs whose pixels encode their class (value 40 * label + noise below 40)."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        (root / f"c{label}").mkdir(parents=True)
        for i in range(per_class):
            arr = (40 * label + rng.integers(0, 40, size)).astype(np.uint8)
            Image.fromarray(arr).save(root / f"c{label}" / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("split", ["train", "heldout", "all"])
def test_stream_equals_load_for_every_split(tmp_path, split):
    folder = _class_folder(tmp_path / "imgs")
    x, y = load(folder, split=split)
    files = scan_folder(folder, split=split)
    assert files.image_shape == x.shape[1:] and files.num_images == len(x)
    got_x, got_y = _collect(stream_dataset(files, batch_size=4, shuffle=False))
    np.testing.assert_array_equal(got_x, x.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(got_y, y)


def test_mixed_gray_rgb_rgba_folder_matches_load(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(rng.integers(0, 255, (6, 6, 4), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "d.bmp")
    x, _ = load(tmp_path, split="all")
    files = scan_folder(tmp_path, split="all")
    assert files.image_shape == x.shape[1:] == (6, 6, 3) and files.labels is None
    got, labels = _collect(stream_dataset(files, batch_size=3, shuffle=False, scale="symmetric"))
    assert labels is None
    np.testing.assert_allclose(got, x.astype(np.float32) / 127.5 - 1.0, atol=1e-6)


def test_reads_the_files_every_epoch_not_a_copy_in_memory(tmp_path):
    """The dataset holds file names: rewrite a file between epochs and the next epoch sees it."""
    for i in range(5):
        Image.fromarray(np.full((4, 4), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
    files = scan_folder(tmp_path, split="all")
    ds = stream_dataset(files, batch_size=5, shuffle=False)
    first, _ = _collect(ds)
    Image.fromarray(np.full((4, 4), 250, np.uint8)).save(tmp_path / "2.png")
    second, _ = _collect(ds)
    assert first[2].max() == pytest.approx(20 / 255) and second[2].min() == pytest.approx(250 / 255)
    np.testing.assert_array_equal(first[[0, 1, 3, 4]], second[[0, 1, 3, 4]])


def test_disk_cache_is_read_back_and_keyed_by_the_folder(tmp_path):
    folder = _class_folder(tmp_path / "imgs", per_class=4, classes=2)
    cache = tmp_path / "cache"
    files = scan_folder(folder, split="all")
    ds = stream_dataset(files, batch_size=3, shuffle=False, cache_dir=cache)
    first, _ = _collect(ds)
    assert any(cache.iterdir())  # the cache files exist after one epoch
    target = folder / "c0" / "00.png"
    Image.fromarray(np.full((8, 10), 255, np.uint8)).save(target)
    second, _ = _collect(ds)
    np.testing.assert_array_equal(first, second)  # the cached epoch, not the files
    changed = scan_folder(folder, split="all")  # the file's size/mtime changed
    assert changed.fingerprint != files.fingerprint
    fresh, _ = _collect(stream_dataset(changed, batch_size=3, shuffle=False, cache_dir=cache))
    assert fresh[0].min() == 1.0  # a new cache, read from the changed file


def test_shuffle_is_seeded_reshuffles_each_epoch_and_keeps_labels(tmp_path):
    folder = _class_folder(tmp_path / "imgs", per_class=8, classes=3)
    files = scan_folder(folder, split="all")
    ds = stream_dataset(files, batch_size=5, seed=3)
    (a, la), (b, lb) = _collect(ds), _collect(ds)
    c, _ = _collect(stream_dataset(files, batch_size=5, seed=3))
    np.testing.assert_array_equal(a, c)  # same seed, same first epoch
    assert not np.array_equal(la, lb)  # a new order in the second epoch
    for images, labels in ((a, la), (b, lb)):  # each image still carries its own label
        pixels = np.round(images * 255).max(axis=(1, 2, 3))
        np.testing.assert_array_equal(pixels // 40, labels)
    assert sorted(la) == sorted(files.labels)


def test_corrupt_and_unsuitable_files_fail_before_training_naming_the_file(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        Image.fromarray(np.full((5, 5), i, np.uint8)).save(good / f"{i}.png")
    data = (good / "1.png").read_bytes()
    (good / "1.png").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError, match=r"1\.png: corrupt"):
        scan_folder(good, split="all")
    (good / "1.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"1\.png: corrupt"):
        scan_folder(good, split="all")
    (good / "1.png").unlink()
    Image.fromarray(np.full((7, 5), 3, np.uint8)).save(good / "odd.png")
    with pytest.raises(DataError, match=r"differ in size.*odd\.png 7x5"):
        scan_folder(good, split="all")
    resized = scan_folder(good, split="all", image_size=(6, 6))
    got, _ = _collect(stream_dataset(resized, batch_size=8, shuffle=False))
    assert got.shape == (3, 6, 6, 1)
    Image.fromarray(np.full((5, 5), 30000, np.uint16)).save(good / "deep.png")
    with pytest.raises(DataError, match=r"deep\.png.*16-bit"):
        scan_folder(good, split="all", image_size=(6, 6))
    with pytest.raises(DataError, match="not a folder"):
        scan_folder(tmp_path / "missing")


def test_bad_arguments_are_config_errors(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    files = scan_folder(tmp_path, split="all")
    with pytest.raises(ConfigError, match="no labels"):
        stream_dataset(files, labels=True)
    with pytest.raises(ConfigError, match="scale"):
        stream_dataset(files, scale="bytes")
    with pytest.raises(ConfigError, match="split"):
        scan_folder(tmp_path, split="validation")


def test_tfrecord_shards_round_trip_with_the_fixed_split(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (23, 6, 7, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 23)
    shards = write_tfrecords(x, y, tmp_path / "shards", images_per_shard=7)
    assert len(shards) == 4 and all(p.exists() for p in shards)
    train, heldout = default_split_indices(23)
    for split, index in (("all", np.arange(23)), ("train", train), ("heldout", heldout)):
        files = scan_tfrecords(tmp_path / "shards", split=split)
        assert files.num_images == len(index) and files.image_shape == (6, 7, 3)
        got_x, got_y = _collect(stream_dataset(files, batch_size=5, shuffle=False))
        np.testing.assert_array_equal(got_x, x[index].astype(np.float32) / 255.0)
        np.testing.assert_array_equal(got_y, y[index])
    shuffled, labels = _collect(stream_dataset(scan_tfrecords(tmp_path / "shards"), batch_size=5))
    assert sorted(labels) == sorted(y) and not np.array_equal(labels, y)
    with pytest.raises(DataError, match="already exist"):
        write_tfrecords(x, y, tmp_path / "shards", images_per_shard=7)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.tfrecord").write_bytes(b"garbage that is no record")
    with pytest.raises(DataError, match=r"x\.tfrecord: corrupt"):
        scan_tfrecords(tmp_path / "bad")


def test_a_zoo_model_fits_on_a_streamed_folder(tmp_path):
    """fit() straight from the files: one epoch of a small GAN on a flat folder of colour PNGs."""
    import tf_genai

    rng = np.random.default_rng(4)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    files = scan_folder(tmp_path, split="train")
    model = tf_genai.create("gan", image_shape=files.image_shape, seed=0)
    model.compile()
    history = model.fit(stream_dataset(files, batch_size=8, scale=model.data_range), epochs=2,
                        verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    assert int(model.g_optimizer.iterations.numpy()) == 2 * 3  # 20 train images: ceil(20 / 8) steps an epoch


def test_streamed_training_equals_in_memory_training(tmp_path):
    """tf_genai.train(stream=True) sees the same split, validation part and per-epoch batches
    as the in-memory run, so both end with the same weights (equal up to the float noise of
    thread-order reductions: deterministic ops would stay on for the rest of this process)."""
    from tf_genai.training import train

    folder = _class_folder(tmp_path / "imgs", per_class=10, classes=3, size=(8, 8))
    runs = {}
    for stream in (False, True):
        result = train("gan", folder, out_dir=tmp_path / f"run_{stream}", epochs=2, batch_size=8,
                       seed=1, plots=False, verbose=0, stream=stream)
        runs[stream] = result
    a, b = runs[False].model, runs[True].model
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=wa.path)
    assert runs[True].history.keys() == runs[False].history.keys()
    for key, values in runs[False].history.items():
        np.testing.assert_allclose(runs[True].history[key], values, rtol=1e-4, err_msg=key)
    other = train("gan", folder, epochs=2, batch_size=8, seed=2, plots=False, verbose=0,
                  stream=True).model  # the control: another seed is another order and init
    assert not all(np.allclose(wo.numpy(), wb.numpy(), atol=1e-3)
                   for wo, wb in zip(other.trainable_weights, b.trainable_weights))
    import json

    config = json.loads((tmp_path / "run_True" / "run.json").read_text())
    assert config["stream"] is True


def test_streamed_vae_run_writes_its_latent_plots(tmp_path):
    from tf_genai.training import train

    folder = _class_folder(tmp_path / "imgs", per_class=8, classes=3, size=(8, 8))
    result = train("vae", folder, out_dir=tmp_path / "run", epochs=1, batch_size=8, seed=0,
                   verbose=0, stream=True)
    assert {"model", "samples", "latent_scatter", "reconstructions"} <= set(result.files)
    assert "val_loss" in result.history and np.isfinite(result.history["val_loss"][-1])
    with pytest.raises(ConfigError, match="stream=True reads files"):
        train("vae", np.zeros((30, 8, 8, 1), np.uint8), epochs=1, stream=True)


# --------------------------------------------------------------- corrupt images, named
def _jpeg_folder(root: Path, count: int = 12, size=(16, 16)) -> Path:
    """Gray JPEGs; the 4th is cut short after its header: Pillow's verify passes it (it does
    not decode JPEG data), TensorFlow's decoder fails on it."""
    rng = np.random.default_rng(2)
    root.mkdir()
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(root / f"{i:02d}.jpg",
                                                                        quality=95)
    data = (root / "03.jpg").read_bytes()
    (root / "03.jpg").write_bytes(data[: len(data) * 2 // 3])
    return root


def test_a_truncated_jpeg_passes_verify_but_not_the_decode_check(tmp_path):
    import warnings

    from tf_genai.data.streaming import scan

    folder = _jpeg_folder(tmp_path / "jpegs")
    assert scan_folder(folder, split="all").num_images == 12  # Pillow's verify: no decode
    with pytest.raises(DataError, match=r"03\.jpg: corrupt.*--skip-corrupt"):
        scan(folder, split="all", check="decode")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = scan(folder, split="all", check="skip")
    assert [str(w.message) for w in caught if "03.jpg" in str(w.message)]
    assert files.num_images == 11 and not any(p.endswith("03.jpg") for p in files.paths)
    images, _ = _collect(stream_dataset(files, batch_size=4, shuffle=False))
    assert images.shape == (11, 16, 16, 1)


def test_a_corrupt_png_inside_a_tfrecord_shard_is_named_by_the_decode_check(tmp_path):
    import tensorflow as tf

    from tf_genai.data.streaming import scan

    images = np.random.default_rng(3).integers(0, 255, (10, 6, 6, 1), dtype=np.uint8)
    shard = tmp_path / "bad-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for i, image in enumerate(images):
            png = tf.io.encode_png(image).numpy()
            if i == 7:
                png = png[: len(png) // 2]  # a record whose PNG is cut short
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))}
            for key, value in zip(("height", "width", "channels"), (6, 6, 1)):
                feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    assert scan_tfrecords(tmp_path).num_images == 10  # the features parse; images not decoded
    with pytest.raises(DataError, match=r"bad-00000-of-00001\.tfrecord \(record 7\): corrupt"):
        scan(tmp_path, split="all", check="decode")
    kept = scan(tmp_path, split="all", check="skip")
    got, _ = _collect(stream_dataset(kept, batch_size=4, shuffle=False))
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8),
                                  np.delete(images, 7, axis=0))


def test_training_names_a_corrupt_image_and_resume_checks_it_before_training(tmp_path):
    """A truncated JPEG that the default scan lets through stops a streamed run with a
    DataError naming it (not TensorFlow's nameless jpeg::Uncompress error). An image damaged
    after a run's first saved epoch stops the resumed run the same way and is recorded in the
    backup, so the next resume stops before training while it is still corrupt;
    --skip-corrupt resumes without it."""
    import shutil
    import warnings

    from tf_genai import checkpointing
    from tf_genai.training import train

    folder = _jpeg_folder(tmp_path / "jpegs", count=40)
    kwargs = dict(data=str(folder), stream=True, split="all", batch_size=8,
                  validation_fraction=0.0, plots=False, verbose=0)
    with pytest.raises(DataError, match=r"03\.jpg: corrupt.*--skip-corrupt"):
        train("mlp_vae", epochs=2, out_dir=tmp_path / "fresh", **kwargs)

    good = tmp_path / "good"  # the same folder with 03.jpg whole, damaged after epoch 1
    shutil.copytree(folder, good)
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(good / "03.jpg", quality=95)
    kwargs = {**kwargs, "data": str(good), "out_dir": tmp_path / "run"}
    train("mlp_vae", epochs=1, **kwargs)
    (good / "03.jpg").write_bytes((folder / "03.jpg").read_bytes())  # now truncated
    with pytest.raises(DataError, match=r"03\.jpg: corrupt.*--skip-corrupt"):
        train("mlp_vae", epochs=2, resume=True, **kwargs)
    with pytest.raises(DataError, match=r"03\.jpg.*stopped this run before"):
        train("mlp_vae", epochs=2, resume=True, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train("mlp_vae", epochs=2, resume=True, check_files="skip", **kwargs)
    assert any("03.jpg" in str(w.message) for w in caught)
    assert len(result.history["loss"]) == 2
    assert checkpointing.backup_epoch(tmp_path / "run" / "backup") == 2


def test_an_image_that_vanishes_after_the_scan_is_named(tmp_path):
    import keras

    from tf_genai.training import train

    folder = _class_folder(tmp_path / "imgs", per_class=12)
    victim = folder / "c1" / "05.png"

    class DeleteAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            victim.unlink(missing_ok=True)

    with pytest.raises(DataError, match=r"c1/05\.png: vanished since the scan"):
        train("mlp_vae", data=str(folder), stream=True, split="all", epochs=3, batch_size=8,
              validation_fraction=0.0, plots=False, verbose=0,
              callbacks=[DeleteAfterFirstEpoch()])


def test_decode_checks_are_refused_for_in_memory_data():
    from tf_genai.training import train

    with pytest.raises(ConfigError, match="--stream"):
        train("mlp_vae", data="digits", check_files="skip", verbose=0)
    with pytest.raises(ConfigError, match="check_files must be one of"):
        train("mlp_vae", data="digits", check_files="deep", verbose=0)


def test_streamed_flips_are_the_in_memory_epochs_flips(tmp_path):
    """stream_epochs(flip=True) mirrors the same images of each (seed, epoch) as
    training.epoch_dataset(flip=True) on the same images loaded into memory."""
    from tf_genai.data.streaming import stream_epochs
    from tf_genai.training import epoch_dataset

    rng = np.random.default_rng(3)
    root = tmp_path / "colour"
    root.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    files = scan_folder(root, "all")
    images, _ = load(str(root), split="all")
    options = {"batch_size": 5, "scale": "symmetric", "seed": 4, "epochs": 3, "flip": True}
    streamed, _ = _collect(stream_epochs(files, **options)[0])
    in_memory, _ = _collect(epoch_dataset(images, **options)[0])
    np.testing.assert_array_equal(streamed, in_memory)
    plain, _ = _collect(stream_epochs(files, **{**options, "flip": False})[0])
    assert not np.array_equal(plain, streamed)
