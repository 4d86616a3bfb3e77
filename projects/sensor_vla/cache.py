"""Content-addressed cache of frozen VL backbone features (the seed's ``--mode cache``).

Layout: ``<cache_dir>/<key[:2]>/<key>.npz`` holding ``tokens`` ``(L, D)`` float16, ``mask``
``(L,)`` bool and ``digest`` (SHA-256 of the two arrays' bytes). The key is the SHA-256 of the
backbone fingerprint (weights, config, image budget), the instruction and the raw image
bytes with their shape, so any change of model or input gives a new key.

Writes go through :func:`projects.common.utils.io.save_npz_atomic` (temporary file + rename)
while holding an exclusive ``fcntl`` lock on ``<cache_dir>/.lock``, which also serialises the
size-limit eviction (least recently used first: reads touch the file's mtime). Reads verify
the digest; an unreadable or mismatching entry is deleted, counted as ``corrupted`` and
reported to the caller as a miss, so the features are recomputed.
"""
import contextlib
import fcntl
import hashlib
import os
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

import numpy as np

from projects.common.utils.io import save_npz_atomic

__all__ = ['VLFeatureCache', 'vl_cache_key']


def vl_cache_key(fingerprint: str, instruction: str, images: np.ndarray) -> str:
    """SHA-256 content key of one sample.

    Args:
        fingerprint (str): Backbone fingerprint (``QwenVLBackbone.fingerprint``).
        instruction (str): Instruction text.
        images (ndarray): ``(V, H, W, 3)`` uint8 images of the sample.

    Returns:
        str: 64 hex digits.
    """
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update(b'\0' + instruction.encode('utf-8') + b'\0')
    arr = np.ascontiguousarray(images, dtype=np.uint8)
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _digest(tokens: np.ndarray, mask: np.ndarray) -> str:
    return hashlib.sha256(tokens.tobytes() + mask.tobytes()).hexdigest()


class VLFeatureCache:
    """On-disk VL feature cache with corruption detection and a size limit.

    Args:
        cache_dir (str): Root folder (created when missing).
        max_bytes (int, optional): Size limit of all entries; past it the least recently
            used entries are evicted after a write. None = unlimited.

    Attributes:
        stats (dict): Counters ``hits``, ``misses``, ``writes``, ``corrupted``, ``evicted``.
    """

    def __init__(self, cache_dir: str, max_bytes: Optional[int] = None):
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        os.makedirs(cache_dir, exist_ok=True)
        self.stats: Dict[str, int] = dict(hits=0, misses=0, writes=0, corrupted=0, evicted=0)

    def path(self, key: str) -> str:
        """File of ``key``."""
        return osp.join(self.cache_dir, key[:2], f'{key}.npz')

    @contextmanager
    def lock(self):
        """Exclusive inter-process lock on ``<cache_dir>/.lock``."""
        with open(osp.join(self.cache_dir, '.lock'), 'a') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def get(self, key: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Read an entry; None on a miss or a corrupted entry (which is deleted and counted).

        Returns:
            tuple | None: ``tokens`` ``(L, D)`` float16 and ``mask`` ``(L,)`` bool.
        """
        p = self.path(key)
        if not osp.exists(p):
            self.stats['misses'] += 1
            return None
        try:
            with np.load(p) as z:
                tokens, mask, digest = z['tokens'], z['mask'], str(z['digest'])
            if _digest(tokens, mask) != digest:
                raise ValueError('digest mismatch')
        except Exception:  # truncated zip, missing array, bad digest: all mean "recompute"
            self.stats['corrupted'] += 1
            self.stats['misses'] += 1
            with self.lock():
                if osp.exists(p):
                    os.remove(p)
            return None
        with contextlib.suppress(OSError):  # evicted meanwhile by another process
            os.utime(p)  # LRU order for eviction
        self.stats['hits'] += 1
        return tokens, mask

    def put(self, key: str, tokens: np.ndarray, mask: np.ndarray) -> None:
        """Store an entry atomically, then evict past ``max_bytes``.

        Args:
            tokens (ndarray): ``(L, D)``; stored as float16.
            mask (ndarray): ``(L,)`` bool.
        """
        tokens = np.ascontiguousarray(tokens, dtype=np.float16)
        mask = np.ascontiguousarray(mask, dtype=bool)
        with self.lock():
            save_npz_atomic(self.path(key), tokens=tokens, mask=mask,
                            digest=np.array(_digest(tokens, mask)))
            self.stats['writes'] += 1
            if self.max_bytes is not None:
                self._evict(keep=key)

    def entries(self):
        """``[(path, size, mtime)]`` of all entries."""
        out = []
        for sub in os.listdir(self.cache_dir):
            d = osp.join(self.cache_dir, sub)
            if not osp.isdir(d):
                continue
            for name in os.listdir(d):
                if name.endswith('.npz') and not name.startswith('.'):
                    p = osp.join(d, name)
                    try:
                        st = os.stat(p)
                    except FileNotFoundError:
                        continue
                    out.append((p, st.st_size, st.st_mtime))
        return out

    def total_bytes(self) -> int:
        """Size of all entries in bytes."""
        return sum(s for _, s, _ in self.entries())

    def _evict(self, keep: str) -> None:
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(s for _, s, _ in entries)
        for p, size, _ in entries:
            if total <= self.max_bytes:
                break
            if osp.basename(p) == f'{keep}.npz':
                continue
            os.remove(p)
            total -= size
            self.stats['evicted'] += 1

    def report(self) -> str:
        """One line with the counters and the size."""
        s = self.stats
        return (f'VL cache {self.cache_dir}: {s["hits"]} hits, {s["misses"]} misses, '
                f'{s["writes"]} writes, {s["corrupted"]} corrupted (recomputed), '
                f'{s["evicted"]} evicted, {self.total_bytes() / 2**20:.1f} MiB')
