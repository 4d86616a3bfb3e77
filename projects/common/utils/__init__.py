"""Utilities shared by all systems."""
from .checkpoint import checkpoint_safe_globals, register_checkpoint_safe_globals
from .io import atomic_write, save_json_atomic, save_npy_atomic, save_npz_atomic, sha256_file

__all__ = ['checkpoint_safe_globals', 'register_checkpoint_safe_globals', 'atomic_write',
           'save_npz_atomic', 'save_npy_atomic', 'save_json_atomic', 'sha256_file']
