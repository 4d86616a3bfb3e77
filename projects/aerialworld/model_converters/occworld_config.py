"""Destination config, release constants and class map of the OccWorld converter.

Part of :mod:`.occworld`. :func:`occworld_model_cfg` reads the ``model`` of
``configs/finetune_nuscenes.py`` (the :class:`AerialWorld` layout closest to the release);
:func:`resolve_class_map` normalises the class correspondence between the release's 18
Occ3D-nuScenes classes and the destination model's classes.
"""
import copy
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Union

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL, OCC3D_NUSCENES_CLASSES

#: The OccWorld-compatible config (repository-relative).
DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'configs', 'finetune_nuscenes.py')

#: Free label of the release (Occ3D's).
OCCWORLD_FREE_LABEL = OCC3D_FREE_LABEL

#: Occupancy grid of the release (Occ3D-nuScenes, 0.4 m voxels).
OCCWORLD_GRID = (200, 200, 16)

#: Attention heads of the release transformer (its config leaves the default of 8).
OCCWORLD_NUM_HEADS = 8

#: Temporal attention layers per U-Net level in the release.
OCCWORLD_TEMPORAL_LAYERS = 6


def occworld_model_cfg(config: Optional[str] = None, **overrides) -> dict:
    """The ``model`` of the OccWorld-compatible config, with overrides.

    The destination layout lives in one place, ``configs/finetune_nuscenes.py`` (tokenizer
    identical to the release VAE: grid 200 x 200 x 16, 18 classes, free 17, class embedding 8,
    base 64 channels x (1, 2, 4), 2 residual blocks per level, single-head attention at the
    lowest level, codebook 512 x 128; world transformer of width 128, 8 heads, 6 blocks, MLP
    ratio 4, 16 frames, pose MLPs of width 128, spatial scales (1, 2, 4)); this reads it.

    Args:
        config (str, optional): Config file. Defaults to :data:`DEFAULT_CONFIG`.
        **overrides: Top-level model keys replacing the config's (``tokenizer`` /
            ``transformer`` dicts are merged key by key).

    Returns:
        dict: A config for ``MODELS.build``.

    Raises:
        FileNotFoundError: If ``config`` does not exist.
        KeyError: If it has no ``model``.
    """
    from mmengine.config import Config
    config = config or DEFAULT_CONFIG
    if not osp.isfile(config):
        raise FileNotFoundError(f'OccWorld-compatible config {config}: no such file')
    cfg = Config.fromfile(config)
    if 'model' not in cfg:
        raise KeyError(f'{config}: has no `model`')
    model = cfg.model.to_dict()
    for key, value in overrides.items():
        if key in ('tokenizer', 'transformer') and isinstance(value, Mapping):
            model[key].update(copy.deepcopy(dict(value)))
        else:
            model[key] = copy.deepcopy(value)
    return model


def resolve_class_map(class_map: Union[None, str, Sequence[Optional[int]]],
                      num_dst_classes: int,
                      num_src_classes: int = len(OCC3D_NUSCENES_CLASSES)
                      ) -> Optional[List[Optional[int]]]:
    """Normalise a class map to ``[src_index or None] * num_dst_classes`` (or None).

    Args:
        class_map: ``None`` (identity when the destination has the release's class count,
            else an error), ``'nuscenes'`` (identity over :data:`OCC3D_NUSCENES_CLASSES`),
            ``'none'`` (no correspondence: the class embedding is not converted), or a
            sequence whose entry ``i`` is the release class index for destination class
            ``i`` (``None`` / negative: no source class, the row keeps its initial value).
        num_dst_classes (int): Classes of the destination model.
        num_src_classes (int): Classes of the source. Defaults to 18.

    Returns:
        list | None: The per-destination-class source index, or None for ``'none'``.

    Raises:
        ValueError: On an unknown name, a length mismatch, an out-of-range index, or an
            identity map requested for a different class count.
    """
    if isinstance(class_map, str):
        name = class_map.lower()
        if name == 'none':
            return None
        if name != 'nuscenes':
            raise ValueError(f"class_map must be 'nuscenes', 'none' or a sequence, got "
                             f'{class_map!r}')
        class_map = None
        if num_dst_classes != num_src_classes:
            raise ValueError(f"class_map='nuscenes' is the identity over the "
                             f'{num_src_classes} Occ3D-nuScenes classes, but the destination '
                             f'model has {num_dst_classes} classes; pass an explicit map')
    if class_map is None:
        if num_dst_classes != num_src_classes:
            raise ValueError(f'the destination model has {num_dst_classes} classes, the '
                             f'OccWorld release {num_src_classes}; pass class_map (a sequence '
                             f"of release class indices per destination class, or 'none')")
        return list(range(num_src_classes))
    mapping = list(class_map)
    if len(mapping) != num_dst_classes:
        raise ValueError(f'class_map has {len(mapping)} entries, the destination model '
                         f'{num_dst_classes} classes')
    out = []
    for i, src in enumerate(mapping):
        if src is None or int(src) < 0:
            out.append(None)
        elif not 0 <= int(src) < num_src_classes:
            raise ValueError(f'class_map[{i}]={src} is not a release class index '
                             f'(0..{num_src_classes - 1})')
        else:
            out.append(int(src))
    return out


__all__ = [
    'OCC3D_NUSCENES_CLASSES', 'OCCWORLD_FREE_LABEL', 'OCCWORLD_GRID', 'OCCWORLD_NUM_HEADS',
    'OCCWORLD_TEMPORAL_LAYERS', 'DEFAULT_CONFIG', 'occworld_model_cfg', 'resolve_class_map'
]
