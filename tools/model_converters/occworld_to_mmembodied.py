#!/usr/bin/env python
"""Convert the public OccWorld checkpoint into an AerialWorld (mmembodied) checkpoint.

Example::

    python tools/model_converters/occworld_to_mmembodied.py \
        checkpoints/occworld/latest.pth checkpoints/occworld/occworld_nuscenes_mmembodied.pth

``SRC`` is OccWorld's release ``latest.pth`` (wzzheng/OccWorld; a dict whose ``state_dict``
holds ``vae.*``, ``transformer.*``, ``pose_encoder.*``, ``pose_decoder.*``), loaded with
``torch.load(weights_only=True)``. The destination model is built from ``--config`` (its
``model``) or, by default, from
:data:`projects.aerialworld.model_converters.occworld.DEFAULT_CONFIG`
(``configs/finetune_nuscenes.py``, the OccWorld-compatible layout). The
conversion report (counts per category and every key that is not a plain rename, with its
rule or reason) is printed; ``DST`` is written atomically as an MMEngine checkpoint
``{'state_dict': ..., 'meta': {...}}`` that ``load_from`` accepts (keys left at their
initialisation are listed as "from scratch"; MMEngine loads non-strictly).

Exit status: 0 written; 1 source keys no rule explains (nothing written unless
``--allow-unexplained``); 2 bad arguments or input files.
"""
import argparse
import json
import os
import pickle
import sys
from typing import Dict, List, Optional, Union

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402

DEFAULT_CONFIG = 'configs/finetune_nuscenes.py'


class ConversionError(Exception):
    """A user-facing error (bad file or argument); the message names the file."""


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description='Convert the OccWorld release checkpoint into an AerialWorld checkpoint.')
    p.add_argument('src', metavar='SRC', help="OccWorld checkpoint (latest.pth, with a "
                   "'state_dict')")
    p.add_argument('dst', metavar='DST', help='output checkpoint for load_from')
    p.add_argument('--config', default=None,
                   help='config whose `model` is the destination (default: the OccWorld-'
                   'compatible nuScenes model of configs/finetune_nuscenes.py)')
    p.add_argument('--class-map', default='nuscenes',
                   help="'nuscenes' (identity over the 18 Occ3D-nuScenes classes, default), "
                   "'none' (class embedding not converted) or a JSON file holding a list: "
                   'entry i = release class index for destination class i (null = none)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    p.add_argument('--allow-unexplained', action='store_true',
                   help='write DST even if some source keys match no conversion rule')
    return p.parse_args(argv)


def load_occworld_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Load the ``state_dict`` of an OccWorld checkpoint with ``weights_only=True``.

    Args:
        path (str): Checkpoint file.

    Returns:
        dict[str, torch.Tensor]: The state dict.

    Raises:
        ConversionError: If the file is missing, not a PyTorch checkpoint, holds objects
            that are not weights-only safe, or has no ``state_dict`` of tensors.
    """
    from projects.common.utils.checkpoint import checkpoint_safe_globals
    if not os.path.isfile(path):
        raise ConversionError(f'{path}: no such file')
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        detail = next((line.strip() for line in str(err).splitlines()
                       if 'Unsupported global' in line), None)
        if detail is not None:
            raise ConversionError(
                f'{path}: holds objects that torch.load(weights_only=True) refuses; re-save '
                f"only its weights, e.g. torch.save({{'state_dict': ckpt['state_dict']}}, "
                f"'latest_weights.pth') in a trusted environment. Details: {detail}") from err
        raise ConversionError(f'{path}: not a PyTorch checkpoint (unreadable pickle '
                              f'data)') from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ConversionError(f'{path}: not a PyTorch checkpoint ({type(err).__name__}: '
                              f'{err})') from err
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        found = (f'a dict with keys {sorted(map(str, ckpt))[:8]}' if isinstance(ckpt, dict)
                 else f'a {type(ckpt).__name__}')
        raise ConversionError(f"{path}: not an OccWorld checkpoint: expected a dict with a "
                              f"'state_dict' entry, found {found}")
    state = ckpt['state_dict']
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ConversionError(f"{path}: 'state_dict' is not a non-empty mapping of parameter "
                              f'names to tensors')
    return state


def load_class_map(value: str) -> Union[str, List[Optional[int]]]:
    """``'nuscenes'`` / ``'none'`` as is, otherwise the list stored in a JSON file.

    Raises:
        ConversionError: If the file is missing or not a JSON list of ints / nulls.
    """
    if value.lower() in ('nuscenes', 'none'):
        return value.lower()
    if not os.path.isfile(value):
        raise ConversionError(f"--class-map {value}: neither 'nuscenes', 'none' nor an "
                              f'existing JSON file')
    try:
        with open(value, encoding='utf-8') as f:
            mapping = json.load(f)
    except (OSError, ValueError) as err:
        raise ConversionError(f'--class-map {value}: not readable JSON ({err})') from err
    if not isinstance(mapping, list) or not all(
            m is None or (isinstance(m, int) and not isinstance(m, bool)) for m in mapping):
        raise ConversionError(f'--class-map {value}: must hold a JSON list of release class '
                              f'indices (int) or null')
    return mapping


def build_destination(config: Optional[str]):
    """Build the destination ``AerialWorld`` from ``config`` (or the compat config).

    Raises:
        ConversionError: If the config file is missing or has no ``model``.
    """
    import projects  # noqa: F401  (registers all modules)
    from projects.aerialworld.model_converters.occworld import occworld_model_cfg
    from projects.registry import MODELS
    try:
        return MODELS.build(occworld_model_cfg(config))
    except (FileNotFoundError, KeyError) as err:
        raise ConversionError(f'--config {config}: {err}') from err


def save_atomic(obj: dict, path: str) -> None:
    """``torch.save`` through :func:`projects.common.utils.io.atomic_write` (temporary file
    next to ``path``, then ``os.replace``)."""
    from projects.common.utils.io import atomic_write
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def convert(args: argparse.Namespace) -> int:
    """Run the conversion described by ``args``; returns the exit status."""
    from projects.aerialworld.model_converters.occworld import (convert_occworld_state_dict,
                                                                format_report)
    if os.path.isdir(args.dst):
        raise ConversionError(f'{args.dst}: is a directory, expected a checkpoint file path')
    if os.path.exists(args.dst) and not args.overwrite:
        raise ConversionError(f'{args.dst}: exists; pass --overwrite to replace it')
    if os.path.abspath(args.dst) == os.path.abspath(args.src):
        raise ConversionError(f'{args.dst}: is the source file; choose another DST')
    if args.config is not None and not os.path.isfile(args.config):
        raise ConversionError(f'--config {args.config}: no such file')
    class_map = load_class_map(args.class_map)
    src_sd = load_occworld_state_dict(args.src)
    model = build_destination(args.config)
    try:
        new_sd, report = convert_occworld_state_dict(src_sd, model, class_map=class_map)
    except ValueError as err:
        raise ConversionError(f'{args.src}: {err}') from err
    print(format_report(report, src_sd))
    if report['unexplained'] and not args.allow_unexplained:
        print(f'error: {len(report["unexplained"])} source keys of {args.src} match no '
              f'conversion rule (listed above); nothing written. Pass --allow-unexplained to '
              f'write the checkpoint anyway.', file=sys.stderr)
        return 1
    meta = dict(
        converter='tools/model_converters/occworld_to_mmembodied.py',
        source='OccWorld release checkpoint (wzzheng/OccWorld, Apache-2.0)',
        source_file=os.path.abspath(args.src),
        config=os.path.abspath(args.config) if args.config else DEFAULT_CONFIG,
        class_map=class_map,
        conversion_counts=dict(report['counts']),
        conversion_report={k: v for k, v in report.items() if k != 'counts'})
    save_atomic(dict(state_dict=new_sd, meta=meta), args.dst)
    print(f'wrote {args.dst}: {len(new_sd)} tensors filled, '
          f'{len(report["from_scratch"])} destination keys left at initialisation')
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status (see module docstring)."""
    args = parse_args(argv)
    try:
        return convert(args)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
