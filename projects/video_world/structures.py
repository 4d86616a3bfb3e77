"""Typed data sample of the video world model (system 5).

:class:`VideoDataSample` follows MMDetection3D's ``Det3DDataSample``: a
:class:`mmengine.structures.BaseDataElement` whose data fields have typed properties that
check what is stored. Frames are always float tensors in [-1, 1] once they leave the data
preprocessor (the convention of the whole system); metrics convert to [0, 1].
"""
import torch
from mmengine.structures import BaseDataElement

__all__ = ['VideoDataSample']


def _check_frames(value: torch.Tensor, name: str) -> torch.Tensor:
    """Check a ``(T, 3, H, W)`` frame tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'VideoDataSample.{name} must be a torch.Tensor, got '
                        f'{type(value).__name__}')
    if value.dim() != 4 or value.shape[1] != 3:
        raise ValueError(f'VideoDataSample.{name} must have shape (T, 3, H, W), got '
                         f'{tuple(value.shape)}')
    return value


def _check_actions(value: torch.Tensor, name: str) -> torch.Tensor:
    """Check a ``(T - 1, A)`` action tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'VideoDataSample.{name} must be a torch.Tensor, got '
                        f'{type(value).__name__}')
    if value.dim() != 2:
        raise ValueError(f'VideoDataSample.{name} must have shape (T - 1, A), got '
                         f'{tuple(value.shape)}')
    return value


class VideoDataSample(BaseDataElement):
    """One clip of an action-conditioned video sequence, with ground truth and predictions.

    Metainfo (set by the dataset / ``PackVideoInputs``): ``clip_id`` (str), ``sequence``
    (str, the scene / episode the clip comes from), ``frame_indices`` (list[int]),
    ``num_context`` (int), ``source`` (str: ``'bridge'``, ``'kitti_raw'``, ``'nuscenes'``,
    ``'generic'``).

    Data fields (all optional, typed):

    * ``gt_frames``: ``(T, 3, H, W)`` float32 in [-1, 1], the clip (set by the model in
      ``predict`` from its normalised inputs, so metrics see what the model saw).
    * ``gt_actions``: ``(T - 1, A)`` float32, action ``t`` moves frame ``t`` to ``t + 1``.
    * ``pred_frames``: ``(K, 3, H, W)`` float32 in [-1, 1], the open-loop prediction of the
      last ``K = T - num_context`` frames.
    * ``pred_frames_shuffled``: ``(K, 3, H, W)``, the same rollout driven by the actions of
      another clip (action-sensitivity check).
    * ``recon_frames``: ``(T, 3, H, W)``, the auto-encoder reconstruction of every frame.
    """

    @property
    def gt_frames(self) -> torch.Tensor:
        """Ground-truth frames ``(T, 3, H, W)`` in [-1, 1]."""
        return self._gt_frames

    @gt_frames.setter
    def gt_frames(self, value: torch.Tensor) -> None:
        self.set_field(_check_frames(value, 'gt_frames'), '_gt_frames', dtype=torch.Tensor)

    @gt_frames.deleter
    def gt_frames(self) -> None:
        del self._gt_frames

    @property
    def gt_actions(self) -> torch.Tensor:
        """Recorded actions ``(T - 1, A)``."""
        return self._gt_actions

    @gt_actions.setter
    def gt_actions(self, value: torch.Tensor) -> None:
        self.set_field(_check_actions(value, 'gt_actions'), '_gt_actions',
                       dtype=torch.Tensor)

    @gt_actions.deleter
    def gt_actions(self) -> None:
        del self._gt_actions

    @property
    def pred_frames(self) -> torch.Tensor:
        """Open-loop predicted frames ``(K, 3, H, W)`` in [-1, 1]."""
        return self._pred_frames

    @pred_frames.setter
    def pred_frames(self, value: torch.Tensor) -> None:
        self.set_field(_check_frames(value, 'pred_frames'), '_pred_frames',
                       dtype=torch.Tensor)

    @pred_frames.deleter
    def pred_frames(self) -> None:
        del self._pred_frames

    @property
    def pred_frames_shuffled(self) -> torch.Tensor:
        """Open-loop prediction with another clip's actions ``(K, 3, H, W)``."""
        return self._pred_frames_shuffled

    @pred_frames_shuffled.setter
    def pred_frames_shuffled(self, value: torch.Tensor) -> None:
        self.set_field(_check_frames(value, 'pred_frames_shuffled'),
                       '_pred_frames_shuffled', dtype=torch.Tensor)

    @pred_frames_shuffled.deleter
    def pred_frames_shuffled(self) -> None:
        del self._pred_frames_shuffled

    @property
    def recon_frames(self) -> torch.Tensor:
        """Auto-encoder reconstruction ``(T, 3, H, W)`` in [-1, 1]."""
        return self._recon_frames

    @recon_frames.setter
    def recon_frames(self, value: torch.Tensor) -> None:
        self.set_field(_check_frames(value, 'recon_frames'), '_recon_frames',
                       dtype=torch.Tensor)

    @recon_frames.deleter
    def recon_frames(self) -> None:
        del self._recon_frames
