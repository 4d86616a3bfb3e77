"""Atomic file output shared by the converters and tools.

Every writer goes through a hidden temporary file in the destination folder and
``os.replace`` (atomic on POSIX and Windows within one file system), so a crash or a kill
never leaves a truncated file under the final name, and readers see either the old or the
new file.
"""
import hashlib
import json
import os
import os.path as osp
import tempfile
from typing import Any, Callable

import numpy as np

__all__ = ['atomic_write', 'save_bytes_atomic', 'save_npz_atomic', 'save_npy_atomic',
           'save_json_atomic', 'sha256_file']


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` by calling ``write(tmp_path)`` and renaming the result into place.

    The file gets the usual permissions (``0o666`` minus the umask; ``mkstemp`` alone would
    leave ``0o600``). The rename makes the write atomic, not durable: no ``fsync`` (the
    converters write thousands of small files).

    Args:
        path (str): Final file path; its folder is created when missing.
        write (Callable[[str], None]): Writes the complete content to the temporary path it
            is given (which keeps ``path``'s extension, for writers that check it).

    Raises:
        Exception: Whatever ``write`` raises; the temporary file is removed first.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=osp.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    def _write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    atomic_write(path, _write)


def save_npz_atomic(path: str, **arrays: np.ndarray) -> None:
    """``np.savez_compressed(path, **arrays)`` through :func:`atomic_write`."""
    def _write(tmp):
        with open(tmp, 'wb') as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, _write)


def save_npy_atomic(path: str, array: np.ndarray) -> None:
    """``np.save(path, array)`` through :func:`atomic_write`."""
    def _write(tmp):
        with open(tmp, 'wb') as f:
            np.save(f, array)
    atomic_write(path, _write)


def save_json_atomic(path: str, obj: Any, **dump_kwargs) -> None:
    """``json.dump(obj)`` (UTF-8) through :func:`atomic_write`."""
    def _write(tmp):
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(obj, f, **dump_kwargs)
    atomic_write(path, _write)


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks (config hashes of converters)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
