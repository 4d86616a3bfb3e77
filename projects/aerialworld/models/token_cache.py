"""On-disk cache of the frozen tokenizer's codes for the AerialWorld world stage.

In the world stage the tokenizer is frozen, so the codes of a frame never change while its
weights do not: encoding every frame of every window at every step (the VQ-VAE encoder on a
full 200 x 200 x 121 grid costs seconds per frame on a CPU) repeats the same work. The cache
encodes each frame once and stores its codes under

``<cache_dir>/<tokenizer hash>/<frame hash>.npy``  (int16 ``(h, w)``; written atomically)

* *tokenizer hash*: SHA-256 of the tokenizer's state dict (names, dtypes, shapes, bytes), so
  new weights (another checkpoint, further training) start a new directory (directories of
  other weights stay valid for those weights: runs sharing a cache directory never delete
  each other's codes; a full-grid frame's codes take 5 KB);
* *frame hash*: BLAKE2b of the frame's labels as the model receives them (the bytes of the
  ``occupancy`` array stored in the frame file, plus its shape), so a changed frame file, or a
  pipeline that changes the frame, gets new codes.

Codes of the current weights are also kept in memory (a few KB per frame).
"""
import hashlib
import os
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log

from projects.common.utils.io import save_npy_atomic

#: File marking a directory as written by :class:`TokenCache`.
MARKER = '.aerialworld_token_cache'


def tokenizer_hash(tokenizer: nn.Module) -> str:
    """SHA-256 (hex) of a module's state dict: key names, dtypes, shapes and bytes.

    Args:
        tokenizer (nn.Module): E.g. :class:`OccVQVAE`.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    for key, value in tokenizer.state_dict().items():
        # A copy: ``Tensor.numpy()`` marks the storage it views as non-resizable, and the
        # weights may be views into an FSDP flat parameter that FSDP frees by resizing.
        arr = value.detach().to('cpu', copy=True).contiguous()
        digest.update(f'{key}|{arr.dtype}|{tuple(arr.shape)}|'.encode())
        digest.update(arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b'')
    return digest.hexdigest()


def frame_hash(frame: torch.Tensor) -> str:
    """BLAKE2b-128 (hex) of one frame's labels and shape.

    Args:
        frame (torch.Tensor): ``(X, Y, Z)`` integer labels (uint8).

    Returns:
        str: 32 hex digits.
    """
    arr = frame.detach().cpu().contiguous().numpy()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f'{arr.dtype}|{arr.shape}|'.encode())
    digest.update(memoryview(arr).cast('B'))
    return digest.hexdigest()


class TokenCache:
    """Codes of a frozen tokenizer, computed once per (weights, frame) and kept on disk.

    Args:
        cache_dir (str): Directory of the cache (created on first use).
        keep_in_memory (bool): Also keep the codes of the current weights in memory.
            Defaults to True.

    Example:
        >>> cache = TokenCache('work_dirs/token_cache')
        >>> tokens = cache.tokenize(model.tokenizer, occ)  # (N, h, w), like tokenize(occ)
    """

    def __init__(self, cache_dir: str, keep_in_memory: bool = True) -> None:
        if not cache_dir:
            raise ValueError('token_cache.cache_dir must be a directory path')
        self.cache_dir = str(cache_dir)
        self.keep_in_memory = bool(keep_in_memory)
        self._memory: Dict[str, torch.Tensor] = {}
        self._fingerprint: Optional[Tuple] = None
        self._weights_hash: Optional[str] = None
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f'TokenCache(cache_dir={self.cache_dir!r}, hits={self.hits}, '
                f'misses={self.misses})')

    @staticmethod
    def _fingerprint_of(tokenizer: nn.Module) -> Tuple:
        """Cheap change detector: storage pointer and in-place version of every tensor."""
        return tuple((key, value.data_ptr(), value._version)
                     for key, value in tokenizer.state_dict(keep_vars=True).items())

    def weights_hash(self, tokenizer: nn.Module) -> str:
        """Hash of the tokenizer weights (recomputed only when a tensor changed).

        Switching to new weights empties the in-memory codes.

        Args:
            tokenizer (nn.Module): The tokenizer.

        Returns:
            str: The first 16 hex digits of :func:`tokenizer_hash`.
        """
        fingerprint = self._fingerprint_of(tokenizer)
        if fingerprint != self._fingerprint:
            new = tokenizer_hash(tokenizer)[:16]
            if new != self._weights_hash:
                self._memory.clear()
                self._weights_hash = new
                print_log(f'TokenCache: tokenizer weights {new}, codes in '
                          f'{osp.join(self.cache_dir, new)}', logger='current')
            self._fingerprint = fingerprint
        return self._weights_hash

    def _dir(self, weights: str) -> str:
        """The directory of ``weights``' codes (created with its marker)."""
        path = osp.join(self.cache_dir, weights)
        if not osp.isfile(osp.join(path, MARKER)):
            os.makedirs(path, exist_ok=True)
            with open(osp.join(path, MARKER), 'w') as f:
                f.write('AerialWorld token cache: <frame hash>.npy = int16 (h, w) codes\n')
        return path

    @torch.no_grad()
    def tokenize(self, tokenizer: nn.Module, occ: torch.Tensor) -> torch.Tensor:
        """Codes of ``occ`` as ``tokenizer.tokenize(occ)`` returns them, from the cache.

        Args:
            tokenizer (nn.Module): Frozen tokenizer with ``tokenize`` and ``num_codes``.
            occ (torch.Tensor): ``(N, X, Y, Z)`` integer labels.

        Returns:
            torch.Tensor: ``(N, h, w)`` long codes on ``occ``'s device.

        Raises:
            RuntimeError: If a cached file does not hold an ``(h, w)`` int16 array (a corrupt
                cache; the message names the file).
        """
        weights = self.weights_hash(tokenizer)
        directory = self._dir(weights)
        keys = [frame_hash(frame) for frame in occ]
        codes: Dict[str, torch.Tensor] = {}
        missing = []
        for i, key in enumerate(keys):
            if key in codes:
                continue
            if key in self._memory:
                codes[key] = self._memory[key]
                continue
            path = osp.join(directory, f'{key}.npy')
            if osp.isfile(path):
                arr = np.load(path)
                if arr.ndim != 2 or arr.dtype != np.int16:
                    raise RuntimeError(f'TokenCache: {path} holds {arr.dtype} {arr.shape}, '
                                       f'expected int16 (h, w); delete it to rebuild')
                codes[key] = torch.from_numpy(arr.astype(np.int64))
            else:
                missing.append(i)
                codes[key] = None
        fresh = [i for i in missing if codes[keys[i]] is None]
        self.hits += len(keys) - len(fresh)
        self.misses += len(fresh)
        if fresh:
            if tokenizer.num_codes > np.iinfo(np.int16).max:
                raise RuntimeError(f'TokenCache stores int16 codes; num_codes='
                                   f'{tokenizer.num_codes} does not fit')
            new = tokenizer.tokenize(occ[fresh]).cpu()
            for i, tokens in zip(fresh, new):
                if codes[keys[i]] is None:
                    codes[keys[i]] = tokens
                    save_npy_atomic(osp.join(directory, f'{keys[i]}.npy'),
                                    tokens.numpy().astype(np.int16))
        if self.keep_in_memory:
            self._memory.update(codes)
        return torch.stack([codes[key] for key in keys]).to(occ.device)
