"""Reading IDX files (the MNIST file format), raw or gzip-compressed.

Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions ``d``, then ``d`` big-endian uint32 sizes, then the values in C order, big-endian.
A file whose header or length does not agree with itself raises :class:`DataError`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from tf_genai.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt or truncated gzip data ({err})") from None
    return data


def is_idx(data: bytes) -> bool:
    """Whether ``data`` starts like an IDX file (zero bytes, a known type, a rank)."""
    return len(data) >= 4 and data[:2] == b"\0\0" and data[2] in _IDX_DTYPES and data[3] >= 1


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file into a native-endian NumPy array of the shape its header states.

    Raises:
        DataError: a missing or unreadable file, a header that is not IDX, or a data section
            shorter or longer than the header says (a truncated or corrupt file).
    """
    data = read_bytes(path)
    if not is_idx(data):
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    # Python ints: a corrupt header cannot overflow the size computation.
    expected = dtype.itemsize
    for s in shape:
        expected *= s
    actual = len(data) - header_len
    if actual != expected:
        what = "truncated" if actual < expected else "corrupt (trailing bytes after the data)"
        raise DataError(
            f"{path}: {what} IDX file: header says shape {shape} ({expected} bytes of data), "
            f"file has {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
