"""Typed data sample of the sensor VLA (one policy query: images, instruction, sensor, actions).

Like mmdet3d's ``Det3DDataSample``, :class:`VLADataSample` is an
:class:`mmengine.structures.BaseDataElement` whose public fields are typed properties, so a
wrong type fails where it is set (with the field name) instead of deep inside the model.
"""
from typing import Optional

import torch
from mmengine.structures import BaseDataElement

__all__ = ['VLADataSample', 'ACTION_NAMES']

#: The 7 action dimensions, in order: end-effector translation deltas (m), rotation deltas
#: (rad, roll / pitch / yaw) and the gripper command (1 = open, 0 = closed in Bridge).
ACTION_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


def _check_tensor(name: str, value, ndim: Optional[int] = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'VLADataSample.{name} must be a torch.Tensor, got {type(value)}')
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f'VLADataSample.{name} must have {ndim} dims, got shape '
                         f'{tuple(value.shape)}')
    return value


class VLADataSample(BaseDataElement):
    """One sample of the sensor VLA.

    Data fields (set by the pipeline or the model):

    - ``gt_actions`` (Tensor): ``(H, A)`` float32 ground-truth action chunk in the *raw*
      (un-normalised) action space, H = chunk length (8), A = 7 (see :data:`ACTION_NAMES`).
    - ``action_mask`` (Tensor): ``(H,)`` bool, False for chunk steps past the episode end
      (those steps repeat the last action and are left out of losses and metrics).
    - ``prev_action`` (Tensor): ``(A,)`` raw action of the previous step (zeros at step 0),
      used only by the copy-last baseline, never by the model.
    - ``pred_actions`` (Tensor): ``(H, A)`` predicted chunk in the raw action space.

    Meta fields (``metainfo``, read as attributes): ``episode`` (str), ``step`` (int),
    ``instruction`` (str), ``has_sensor`` (bool), ``sensor_loss_weight`` (float: the weight
    of this sample's loss; 1.0 for samples without a sensor).
    """

    @property
    def gt_actions(self) -> torch.Tensor:
        return self._gt_actions

    @gt_actions.setter
    def gt_actions(self, value: torch.Tensor):
        self.set_field(_check_tensor('gt_actions', value, 2), '_gt_actions', dtype=torch.Tensor)

    @gt_actions.deleter
    def gt_actions(self):
        del self._gt_actions

    @property
    def action_mask(self) -> torch.Tensor:
        return self._action_mask

    @action_mask.setter
    def action_mask(self, value: torch.Tensor):
        self.set_field(_check_tensor('action_mask', value, 1), '_action_mask',
                       dtype=torch.Tensor)

    @action_mask.deleter
    def action_mask(self):
        del self._action_mask

    @property
    def prev_action(self) -> torch.Tensor:
        return self._prev_action

    @prev_action.setter
    def prev_action(self, value: torch.Tensor):
        self.set_field(_check_tensor('prev_action', value, 1), '_prev_action',
                       dtype=torch.Tensor)

    @prev_action.deleter
    def prev_action(self):
        del self._prev_action

    @property
    def pred_actions(self) -> torch.Tensor:
        return self._pred_actions

    @pred_actions.setter
    def pred_actions(self, value: torch.Tensor):
        self.set_field(_check_tensor('pred_actions', value, 2), '_pred_actions',
                       dtype=torch.Tensor)

    @pred_actions.deleter
    def pred_actions(self):
        del self._pred_actions
