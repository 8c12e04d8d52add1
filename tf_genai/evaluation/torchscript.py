"""Read the tensors of a TorchScript file as NumPy arrays, without PyTorch.

A TorchScript file (``torch.jit.save``) is a zip archive: ``<name>/data.pkl`` pickles the module
tree (each module an object of a ``__torch__.*`` class whose state is its attributes), and each
tensor's bytes are a record ``<name>/data/<key>`` that the pickle refers to by a persistent id
``("storage", torch.FloatStorage, key, location, numel)``, rebuilt by
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.

Unpickling runs whatever callables a pickle names, so the reader is restricted
(:class:`_Unpickler`): it resolves only the globals such a file needs -- the tensor rebuild,
float32 storages, ``collections.OrderedDict`` (hooks), ``torch.jit._pickle.build_intlist`` --
and maps every ``__torch__.*`` module class to an inert attribute holder; any other global is an
error. Callers also check the file's SHA-256 before reading it
(:func:`tf_genai.evaluation.inception.converted_weights`), so only a known file is unpickled.

This is all the FID Inception network needs from PyTorch: its weights, read once.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tf_genai.errors import DataError

# The only storage types the reader accepts, with their little-endian dtypes.
STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4")}


class _ScriptModule:
    """What a pickled ``__torch__.*`` module becomes: its attributes, nothing callable."""

    attributes: dict[str, Any] = {}  # a module pickled without state has none

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.attributes = dict(state)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, copied out."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    last = int(offset) + sum((d - 1) * s for d, s in zip(size, stride)) if all(size) else -1
    if len(size) != len(stride) or int(offset) < 0 or min(stride, default=0) < 0 or (
            last >= len(storage)):
        raise DataError(f"a tensor of size {size}, stride {stride} at offset {offset} does not "
                        f"fit its storage of {len(storage)} values")
    view = np.lib.stride_tricks.as_strided(
        storage[int(offset):], shape=size, strides=[s * storage.itemsize for s in stride])
    return np.array(view)  # contiguous, owns its memory


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): list,
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals listed above; storages come from the archive's records."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, path: Path) -> None:
        super().__init__(archive.open(f"{prefix}/data.pkl"))
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptModule
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a tensor file")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], np.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            if len(raw) < int(numel) * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage record {key} holds {len(raw)} bytes, "
                                             f"{numel} values were declared")
            self.storages[key] = np.frombuffer(raw, dtype, count=int(numel))
        return self.storages[key]


def _flatten(module: _ScriptModule, prefix: str, out: dict[str, np.ndarray]) -> None:
    for name, value in module.attributes.items():
        if isinstance(value, np.ndarray):
            out[prefix + name] = value
        elif isinstance(value, _ScriptModule):
            _flatten(value, f"{prefix}{name}.", out)


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor attribute of a TorchScript file's module tree, by dotted name (the names of
    the module's ``state_dict``, e.g. ``net.layers.conv.weight``), as NumPy arrays.

    Raises:
        DataError: not a TorchScript zip, a global outside the allowed set, or a tensor that
            does not fit its storage.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1
                       and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise DataError(f"{path}: not a TorchScript file (no single <name>/data.pkl)")
            root = _Unpickler(archive, pickles[0].split("/")[0], path).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, DataError) as err:
        raise DataError(f"{path}: not a readable TorchScript tensor file ({err})") from None
    if not isinstance(root, _ScriptModule):
        raise DataError(f"{path}: the pickle holds a {type(root).__name__}, not a module")
    tensors: dict[str, np.ndarray] = {}
    _flatten(root, "", tensors)
    return tensors
