"""Typed data sample of AerialWorld (``docs/aerialworld_data_and_model_contract.md``).

:class:`OccDataSample` is the AerialWorld counterpart of mmdet3d's ``Det3DDataSample``: an
``mmengine.structures.BaseDataElement`` whose data fields are typed properties, so a
misspelt or mistyped field fails where it is set instead of in the metric.
"""
from typing import Optional

import torch
from mmengine.structures import BaseDataElement

#: Occupancy fields: uint8 labels ``(F, X, Y, Z)``.
OCC_FIELDS = ('pred_occ', 'decoded_pred_occ', 'gt_occ', 'baseline_occ')
#: Ego-motion / pose fields: float32 ``(F, D)``.
MOTION_FIELDS = ('pred_ego_motion', 'gt_ego_motion', 'baseline_ego_motion', 'planned_poses')
#: Metainfo keys the dataset's ``PackOccupancyInputs`` sets.
META_KEYS = ('session', 'frame_indices', 'timestamps', 'sample_idx', 'num_history',
             'num_future', 'free_label', 'num_classes')


def _checked(name: str, value, dtype: torch.dtype, ndim: int) -> torch.Tensor:
    """Return ``value`` if it is a ``torch.Tensor`` of ``dtype`` with ``ndim`` dimensions.

    Raises:
        TypeError: If ``value`` is not a tensor or has another dtype.
        ValueError: If it has another number of dimensions.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'OccDataSample.{name} must be a torch.Tensor, got '
                        f'{type(value).__name__}')
    if value.dtype != dtype:
        raise TypeError(f'OccDataSample.{name} must be {dtype}, got {value.dtype}')
    if value.dim() != ndim:
        raise ValueError(f'OccDataSample.{name} must have {ndim} dimensions, got shape '
                         f'{tuple(value.shape)}')
    return value


def _set_checked(sample: BaseDataElement, name: str, value, dtype: torch.dtype,
                 ndim: int) -> None:
    """Store ``value`` as the private field ``_<name>`` after :func:`_checked`.

    ``BaseDataElement.__setattr__`` registers ``name`` as a data field before the property
    setter runs; on a rejected value the registration is undone so the sample stays valid.
    """
    try:
        value = _checked(name, value, dtype, ndim)
    except (TypeError, ValueError):
        sample._data_fields.discard(name)
        raise
    sample.set_field(value, f'_{name}', dtype=torch.Tensor)


def _occ_property(name: str) -> property:
    """A property holding a uint8 ``(F, X, Y, Z)`` occupancy tensor."""

    def getter(self) -> torch.Tensor:
        return getattr(self, f'_{name}')

    def setter(self, value: torch.Tensor) -> None:
        _set_checked(self, name, value, torch.uint8, 4)

    def deleter(self) -> None:
        delattr(self, f'_{name}')

    return property(getter, setter, deleter,
                    doc=f'torch.Tensor: ``{name}`` uint8 ``(F, X, Y, Z)`` class labels.')


def _motion_property(name: str) -> property:
    """A property holding a float32 ``(F, D)`` motion / pose tensor."""

    def getter(self) -> torch.Tensor:
        return getattr(self, f'_{name}')

    def setter(self, value: torch.Tensor) -> None:
        _set_checked(self, name, value, torch.float32, 2)

    def deleter(self) -> None:
        delattr(self, f'_{name}')

    return property(getter, setter, deleter,
                    doc=f'torch.Tensor: ``{name}`` float32 ``(F, D)`` (metres, radians).')


class OccDataSample(BaseDataElement):
    """Data sample of an AerialWorld window and of its forecast.

    Data fields (all optional, CPU or device tensors; see
    ``docs/aerialworld_data_and_model_contract.md``):

    * ``pred_occ``, ``decoded_pred_occ``, ``gt_occ``, ``baseline_occ``: uint8
      ``(F, X, Y, Z)`` semantic labels of the ``F`` future frames (``decoded_pred_occ``:
      plain VQ decoding when the model uses copy-through decoding; ``baseline_occ``: the
      copy-last-frame baseline);
    * ``pred_ego_motion``, ``gt_ego_motion``, ``baseline_ego_motion``: float32 ``(F, D)``
      per-step ego motion (``D`` = 4 ``[dx, dy, dz, dyaw]`` or 13 for ``pose_mode='6dof'``;
      metres, radians, m/s, rad/s);
    * ``planned_poses``: float32 ``(F, 13)`` poses of a planned rollout.

    Metainfo (set by the dataset's ``PackOccupancyInputs``): ``session`` (str),
    ``frame_indices`` (list[int]), ``timestamps`` (list[float], s), ``sample_idx`` (int),
    ``num_history`` / ``num_future`` (int), ``free_label`` / ``num_classes`` (int); the model
    adds ``pred_source`` (``'rollout'``, ``'reconstruction'`` or ``'plan'``) and
    ``pose_mode``. Metainfo keys are readable as attributes (``sample.session``).

    Raises:
        TypeError / ValueError: When a data field is set with the wrong type, dtype or
            number of dimensions.

    Example:
        >>> sample = OccDataSample(metainfo=dict(session='drone_survey_000', num_future=6))
        >>> sample.gt_occ = torch.zeros(6, 200, 200, 121, dtype=torch.uint8)
        >>> sample.gt_occ.shape
        torch.Size([6, 200, 200, 121])
    """

    pred_occ = _occ_property('pred_occ')
    decoded_pred_occ = _occ_property('decoded_pred_occ')
    gt_occ = _occ_property('gt_occ')
    baseline_occ = _occ_property('baseline_occ')
    pred_ego_motion = _motion_property('pred_ego_motion')
    gt_ego_motion = _motion_property('gt_ego_motion')
    baseline_ego_motion = _motion_property('baseline_ego_motion')
    planned_poses = _motion_property('planned_poses')

    @classmethod
    def from_element(cls, element: Optional[BaseDataElement]) -> 'OccDataSample':
        """An ``OccDataSample`` with the metainfo (and data fields) of ``element``.

        Args:
            element (BaseDataElement, optional): E.g. the dataset's packed sample; None
                gives an empty sample.

        Returns:
            OccDataSample: A new sample (tensors are shared, not copied).
        """
        if element is None:
            return cls()
        return cls(metainfo=dict(element.metainfo), **dict(element.items()))
