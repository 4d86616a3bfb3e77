"""Policy inference: load a checkpoint, predict action chunks, ACT-style temporal ensembling.

Example:
    >>> policy = VLAPolicy.from_checkpoint('configs/sensor_vla/bridge_tiny.py',
    ...                                    'work_dirs/bridge_tiny/iter_600.pth')
    >>> chunk = policy.predict('put carrot on plate', images)   # images (V, H, W, 3) uint8
    >>> chunk.shape
    (8, 7)
"""
from collections import deque
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from projects.registry import MODELS

from .structures import VLADataSample

__all__ = ['VLAPolicy', 'TemporalEnsembler', 'predict']


class TemporalEnsembler:
    """ACT's temporal ensembling (Zhao et al., RSS 2023, "Learning Fine-Grained Bimanual
    Manipulation with Low-Cost Hardware"): every control step a new chunk of H actions is
    predicted; the action executed at step t averages all chunks that cover t, chunk predicted
    at step t - i (i steps old) weighted ``w_i = exp(-k * i)`` (ACT: older predictions weigh
    more for k > 0; k = 0 is a plain mean). Weights are normalised over the covering chunks.

    Args:
        chunk_size (int): H. Defaults to 8.
        k (float): Exponential weight constant. Defaults to 0.01 (ACT's value).
    """

    def __init__(self, chunk_size: int = 8, k: float = 0.01):
        self.chunk_size = chunk_size
        self.k = k
        self.chunks: deque = deque(maxlen=chunk_size)

    def reset(self) -> None:
        """Forget all chunks (new episode)."""
        self.chunks.clear()

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add this step's chunk ``(H, A)`` and return the action to execute ``(A,)``."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape[0] != self.chunk_size:
            raise ValueError(f'TemporalEnsembler: chunk of {chunk.shape[0]} steps, expected '
                             f'{self.chunk_size}')
        self.chunks.append(chunk)
        n = len(self.chunks)
        # the newest chunk (age 0) covers now at index 0; a chunk of age i at index i
        acts = np.stack([self.chunks[n - 1 - age][age] for age in range(n)])
        ages = np.arange(n)
        # ACT indexes the covering chunks oldest first with w_j = exp(-k j): the oldest
        # (age n - 1) gets exp(0), the newest exp(-k (n - 1))
        w = np.exp(-self.k * (n - 1 - ages))
        w = w / w.sum()
        return (w[:, None] * acts).sum(0)


class VLAPolicy:
    """A trained sensor VLA for closed-loop use.

    Args:
        model (SensorVLA): The model (eval mode is set); its ``action_normalizer`` buffers
            hold the statistics saved with the checkpoint.
        ensemble_k (float, optional): Temporal ensembling constant; None disables it.
    """

    def __init__(self, model, ensemble_k: Optional[float] = 0.01):
        self.model = model.eval()
        self.prev_action = None
        self.ensembler = None if ensemble_k is None else TemporalEnsembler(
            model.action_head.chunk_size, ensemble_k)

    @classmethod
    def from_checkpoint(cls, config: str, checkpoint: str, device: str = 'cpu',
                        ensemble_k: Optional[float] = 0.01) -> 'VLAPolicy':
        """Build the config's model and load ``checkpoint`` (statistics included)."""
        cfg = Config.fromfile(config)
        init_default_scope(cfg.get('default_scope', 'projects'))
        mcfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
        if mcfg.get('type') == 'FusionComparison':
            raise ValueError('VLAPolicy: a FusionComparison checkpoint holds several policies; '
                             'train one SensorVLA config for deployment')
        mcfg['action_normalizer'] = dict(mcfg.get('action_normalizer') or {}, stats=None)
        mcfg.pop('vl_cache', None)
        model = MODELS.build(mcfg)
        load_checkpoint(model, checkpoint, map_location=device, strict=True)
        return cls(model.to(device), ensemble_k)

    def reset(self) -> None:
        """Start a new episode."""
        self.prev_action = None
        if self.ensembler is not None:
            self.ensembler.reset()

    @torch.no_grad()
    def predict(self, instruction: str, images: np.ndarray,
                sensor: Optional[np.ndarray] = None) -> np.ndarray:
        """Predict the action chunk for one observation.

        Args:
            instruction (str): Language instruction.
            images (ndarray): ``(V, H, W, 3)`` uint8 views (same views as in training).
            sensor (ndarray, optional): ``(T, 1026)`` stream window; None = no sensor.

        Returns:
            ndarray: ``(8, 7)`` raw-unit action chunk.

        Raises:
            ValueError: On images that are not ``(V, H, W, 3)`` uint8.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f'predict: images must be (V, H, W, 3) uint8, got '
                             f'{images.shape} {images.dtype}')
        dev = next(self.model.action_head.parameters()).device
        a_dim = self.model.action_head.action_dim
        prev = self.prev_action if self.prev_action is not None else np.zeros(a_dim)
        inputs = dict(images=torch.from_numpy(images[None]),
                      sensor=None if sensor is None else
                      torch.as_tensor(np.asarray(sensor, np.float32)[None], device=dev),
                      has_sensor=torch.tensor([sensor is not None], device=dev),
                      prev_action=torch.as_tensor(prev, dtype=torch.float32,
                                                  device=dev)[None])
        sample = VLADataSample(metainfo=dict(instruction=instruction,
                                             has_sensor=sensor is not None))
        out = self.model(inputs, [sample], mode='predict')
        return out[0].pred_actions.cpu().numpy()

    def act(self, instruction: str, images: np.ndarray,
            sensor: Optional[np.ndarray] = None) -> np.ndarray:
        """One control step: predict a chunk, temporally ensemble, remember the executed
        action (the next step's previous action). Returns ``(7,)``."""
        chunk = self.predict(instruction, images, sensor)
        action = chunk[0] if self.ensembler is None else self.ensembler.update(chunk)
        self.prev_action = action
        return action


def predict(instruction: str, images: np.ndarray, sensor: Optional[np.ndarray] = None, *,
            policy: VLAPolicy) -> np.ndarray:
    """Functional form of :meth:`VLAPolicy.predict`: ``(8, 7)`` chunk."""
    return policy.predict(instruction, images, sensor)
