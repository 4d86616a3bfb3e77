"""Bookkeeping of one OccWorld -> AerialWorld conversion (:class:`Conversion`).

Part of :mod:`.occworld`: the rules of :mod:`.occworld_vae` and :mod:`.occworld_transformer`
copy, adapt, drop or synthesize keys through a :class:`Conversion`, which enforces that each
source key is handled and each destination key filled once, with the destination's shape.
"""
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn as nn


class Conversion:
    """State of one conversion: source, destination, output and report.

    Every source key is claimed once (copied, adapted or dropped) and every destination key
    filled at most once, with the destination's shape and dtype; a second claim or fill, or
    a wrong shape, is a bug of a conversion rule and raises ``RuntimeError``.

    Args:
        src (Mapping[str, torch.Tensor]): Release state dict (``module.`` prefix stripped).
        dst (dict[str, torch.Tensor]): Destination state dict (shapes, dtypes and the
            initial values of rows an adaptation keeps).
        dst_module (nn.Module, optional): The destination model, to read attributes such
            as head counts (:meth:`dst_module_attr`); None when only a state dict is given.

    Attributes:
        out (dict[str, torch.Tensor]): The converted destination tensors.
        report (dict): ``mapped``, ``adapted``, ``dropped``, ``unexplained``,
            ``synthesized``, ``from_scratch`` and ``notes`` (see
            :func:`~.occworld.convert_occworld_state_dict`).
        claimed (set[str]): Source keys handled so far.
    """

    def __init__(self, src: Mapping[str, torch.Tensor], dst: Dict[str, torch.Tensor],
                 dst_module: Optional[nn.Module]) -> None:
        self.src = src
        self.dst = dst
        self.dst_module = dst_module
        self.out: Dict[str, torch.Tensor] = {}
        self.report = dict(mapped={}, adapted={}, dropped={}, unexplained=[], synthesized={},
                           from_scratch={}, notes=[])
        self.claimed = set()

    # ---------------------------------------------------------------- bookkeeping
    def _claim(self, key: str) -> None:
        if key in self.claimed:
            raise RuntimeError(f'occworld converter: source key {key!r} handled twice')
        self.claimed.add(key)

    def _fill(self, dst_key: str, value: torch.Tensor) -> None:
        if dst_key in self.out:
            raise RuntimeError(f'occworld converter: destination key {dst_key!r} filled twice')
        ref = self.dst[dst_key]
        if tuple(value.shape) != tuple(ref.shape):
            raise RuntimeError(f'occworld converter: {dst_key!r} built with shape '
                               f'{tuple(value.shape)}, destination {tuple(ref.shape)}')
        self.out[dst_key] = value if value.dtype == ref.dtype else value.to(ref.dtype)

    def drop(self, key: str, reason: str) -> None:
        """Report source ``key`` as dropped.

        Args:
            key (str): Source key.
            reason (str): Why it has no destination.

        Raises:
            RuntimeError: ``key`` was already handled.
        """
        self._claim(key)
        self.report['dropped'][key] = reason

    def copy(self, key: str, dst_key: str, rule: str = 'rename') -> bool:
        """Copy ``key`` to ``dst_key`` when both exist with the same shape, else drop it.

        Args:
            key (str): Source key.
            dst_key (str): Destination key.
            rule (str): Note reported with the mapping. Defaults to ``'rename'``.

        Returns:
            bool: Whether the tensor was copied (False: dropped with the reason).
        """
        if dst_key not in self.dst:
            self.drop(key, f'destination has no {dst_key} (layout differs from the release)')
            return False
        src_shape, dst_shape = tuple(self.src[key].shape), tuple(self.dst[dst_key].shape)
        if src_shape != dst_shape:
            self.drop(key, f'shape mismatch: release {list(src_shape)} vs destination '
                      f'{dst_key} {list(dst_shape)} (destination config differs from the '
                      f'release; see configs/finetune_nuscenes.py)')
            return False
        self._claim(key)
        self._fill(dst_key, self.src[key])
        self.report['mapped'][key] = dict(dst=dst_key, rule=rule)
        return True

    def adapt(self, keys: Sequence[str], dst_key: str, value: torch.Tensor, rule: str) -> None:
        """Fill ``dst_key`` with ``value`` computed from source ``keys`` by ``rule``.

        Args:
            keys (Sequence[str]): Source keys the value is computed from.
            dst_key (str): Destination key.
            value (torch.Tensor): The new tensor, of the destination's shape.
            rule (str): The transformation, reported for every key.
        """
        for key in keys:
            self._claim(key)
            self.report['adapted'][key] = dict(dst=dst_key, rule=rule)
        self._fill(dst_key, value.detach().contiguous().clone())

    def synthesize(self, dst_key: str, value: torch.Tensor, rule: str) -> None:
        """Fill ``dst_key`` without a source key.

        Args:
            dst_key (str): Destination key.
            value (torch.Tensor): The tensor, of the destination's shape.
            rule (str): How it was made (reported).
        """
        self._fill(dst_key, value)
        self.report['synthesized'][dst_key] = rule

    # ---------------------------------------------------------------- helpers
    def dst_module_attr(self, path: str, attr: str) -> Any:
        """An attribute of a destination sub-module.

        Args:
            path (str): Dotted sub-module path (e.g. ``'transformer.blocks.0.temporal'``).
            attr (str): Attribute name (e.g. ``'num_heads'``).

        Returns:
            Any: The attribute, None without a destination module or when the path or
            attribute does not exist.
        """
        if self.dst_module is None:
            return None
        mod = self.dst_module
        for part in path.split('.'):
            mod = getattr(mod, part, None) if not part.isdigit() else (
                mod[int(part)] if isinstance(mod, (nn.ModuleList, nn.Sequential)) and
                int(part) < len(mod) else None)
            if mod is None:
                return None
        return getattr(mod, attr, None)


__all__ = ['Conversion']
