"""Strictness check of MMEngine ``Pretrained`` init configs.

MMEngine's ``PretrainedInit`` loads non-strictly: missing keys, unexpected keys and shape
mismatches are only logged, so a tokenizer checkpoint that does not fit the config silently
leaves layers at their random initialisation. :func:`check_pretrained_init` reads the state
dict exactly as ``PretrainedInit`` will (``mmengine.runner.checkpoint`` loaders, same
``prefix`` handling) and raises before anything is loaded.
"""
import pickle
from typing import Dict, Optional

import torch
import torch.nn as nn


def load_pretrained_state(checkpoint: str, prefix: Optional[str] = None,
                          what: str = 'init_cfg') -> Dict[str, torch.Tensor]:
    """The state dict MMEngine's ``Pretrained`` initialiser loads from ``checkpoint``.

    Args:
        checkpoint (str): Checkpoint file (``{'state_dict': ...}`` or a bare state dict),
            read with ``torch.load(weights_only=True)``.
        prefix (str, optional): Keep the keys starting with ``prefix`` (and strip it), as
            ``init_cfg=dict(type='Pretrained', prefix=...)`` does; None: the whole dict with
            a leading ``module.`` (DDP) removed, as ``load_checkpoint`` does.
        what (str): How the checkpoint was given, for error messages.

    Returns:
        dict[str, torch.Tensor]: The state dict.

    Raises:
        FileNotFoundError: If ``checkpoint`` does not exist.
        RuntimeError: If the file holds objects that are not weights-only safe (saved
            without ``CheckpointCompatHook``) or no key starts with ``prefix``.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from projects.common.utils.checkpoint import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    try:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'{what}: {checkpoint!r} cannot be loaded with weights_only=True (saved without '
            f'CheckpointCompatHook?). Re-save its state_dict only, e.g. torch.save('
            f'{{"state_dict": ckpt["state_dict"]}}, path). Details: {err}') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if prefix is None:
        return {(k[len('module.'):] if k.startswith('module.') else k): v
                for k, v in state.items()}
    if not prefix.endswith('.'):
        prefix += '.'
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        heads = sorted({k.split('.')[0] + '.' for k in state})[:8]
        raise RuntimeError(f'{what}: no key of {checkpoint!r} starts with prefix={prefix!r} '
                           f'(key prefixes found: {heads})')
    return out


def check_pretrained_init(module: nn.Module, init_cfg: Optional[dict],
                          what: str = 'init_cfg') -> bool:
    """Raise if a ``Pretrained`` init config would not fill ``module`` exactly.

    Args:
        module (nn.Module): The module the init config belongs to.
        init_cfg (dict | list[dict], optional): Its ``init_cfg``; only entries with
            ``type='Pretrained'`` are checked.
        what (str): Config field named in errors (e.g. ``'model.tokenizer.init_cfg'``).

    Returns:
        bool: Whether a ``Pretrained`` entry was found (and matches).

    Raises:
        RuntimeError: On missing keys, unexpected keys or shape mismatches (all listed, with
            the checkpoint file), or an unreadable checkpoint (see
            :func:`load_pretrained_state`).
    """
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    found = False
    for cfg in cfgs:
        if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained':
            continue
        found = True
        path = cfg.get('checkpoint')
        if not path:
            raise RuntimeError(f"{what}: type='Pretrained' needs a 'checkpoint' file")
        state = load_pretrained_state(path, cfg.get('prefix'), what)
        own = module.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model '
                        f'{tuple(own[k].shape)}' for k in set(own) & set(state)
                        if tuple(state[k].shape) != tuple(own[k].shape))
        if missing or unexpected or shapes:
            parts = []
            for title, items in (('missing keys', missing), ('unexpected keys', unexpected),
                                 ('shape mismatches', shapes)):
                if items:
                    more = f' (+{len(items) - 10} more)' if len(items) > 10 else ''
                    parts.append(f'{title} {items[:10]}{more}')
            raise RuntimeError(f'{what}: checkpoint {path!r} (prefix={cfg.get("prefix")!r}) '
                               f'does not match the module config: ' + '; '.join(parts))
    return found
