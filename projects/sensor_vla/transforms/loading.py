"""Pipeline transforms of the sensor VLA: load one (episode, step) sample and pack it."""
import os.path as osp
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS

from ..structures import VLADataSample

__all__ = ['LoadVLAStep', 'PackVLAInputs', 'VLADataError']


class VLADataError(ValueError):
    """A bad episode file; the message names the episode and the step."""


def _load(path: str, where: str):
    if not osp.exists(path):
        raise VLADataError(f'{where}: missing file {path}')
    return np.load(path, mmap_mode='r')


@TRANSFORMS.register_module()
class LoadVLAStep(BaseTransform):
    """Load images, the action chunk, the previous action and the sensor window of one step.

    Adds to ``results``: ``images`` ``(V, H, W, 3)`` uint8; ``gt_actions`` ``(H, A)`` float32
    (steps past the episode end repeat the last action) with ``action_mask`` ``(H,)``;
    ``prev_action`` ``(A,)`` (zeros at step 0); ``sensor`` ``(W, C)`` float32 — the last
    ``window`` stream samples up to this step, zero-padded at the start of the stream — or
    None when the session has no sensor.

    Args:
        chunk_size (int): H. Defaults to 8.
        window (int): Stream samples per window. Defaults to 650 (1 s at 650 Hz).
        sensor_channels (int): Expected stream width C. Defaults to 1026.
        action_dim (int): Expected A. Defaults to 7.
        decimate (int): Keep every ``decimate``-th stream sample of the window (the newest
            one always kept), e.g. 10 turns 1 s at 650 Hz into 65 samples at 65 Hz for CPU
            configs. Defaults to 1.

    Raises:
        VLADataError: A missing episode file, a step without an image (fewer image steps or
            views than the index says), a stream of the wrong width, or a non-finite action in
            the chunk; each message names the episode and the step.
    """

    def __init__(self, chunk_size: int = 8, window: int = 650, sensor_channels: int = 1026,
                 action_dim: int = 7, decimate: int = 1):
        if decimate < 1:
            raise ValueError(f'LoadVLAStep: decimate must be >= 1, got {decimate}')
        self.decimate = decimate
        self.chunk_size = chunk_size
        self.window = window
        self.sensor_channels = sensor_channels
        self.action_dim = action_dim

    def transform(self, results: dict) -> dict:
        d, t = results['episode_dir'], int(results['step'])
        where = f'episode {results["episode"]!r}, step {t}'
        images = _load(osp.join(d, 'images.npy'), where)
        n_views = len(results['views'])
        if images.ndim != 5 or t >= images.shape[0] or images.shape[1] < n_views:
            raise VLADataError(
                f'{where}: missing image: images.npy has shape {tuple(images.shape)}, the index '
                f'lists {results["num_steps"]} steps and views {results["views"]}')
        results['images'] = np.array(images[t, :n_views])
        actions = _load(osp.join(d, 'actions.npy'), where)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise VLADataError(f'{where}: actions.npy must be (T, {self.action_dim}), got '
                               f'{tuple(actions.shape)}')
        end = min(t + self.chunk_size, len(actions))
        chunk = np.array(actions[t:end], dtype=np.float32)
        bad = np.nonzero(~np.isfinite(chunk).all(axis=1))[0]
        if len(bad):
            raise VLADataError(f'episode {results["episode"]!r}, step {t + int(bad[0])}: '
                               f'non-finite action {chunk[bad[0]].tolist()}')
        mask = np.zeros(self.chunk_size, dtype=bool)
        mask[:len(chunk)] = True
        pad = np.repeat(chunk[-1:], self.chunk_size - len(chunk), axis=0)
        results['gt_actions'] = np.concatenate([chunk, pad], axis=0)
        results['action_mask'] = mask
        prev = np.array(actions[t - 1], dtype=np.float32) if t > 0 else \
            np.zeros(self.action_dim, np.float32)
        if not np.isfinite(prev).all():
            raise VLADataError(f'episode {results["episode"]!r}, step {t - 1}: non-finite action '
                               f'{prev.tolist()}')
        results['prev_action'] = prev
        results['sensor'] = None
        if results.get('has_sensor'):
            stream = _load(osp.join(d, 'sensor.npy'), where)
            ends = _load(osp.join(d, 'sensor_end.npy'), where)
            if stream.ndim != 2 or stream.shape[1] != self.sensor_channels:
                raise VLADataError(f'{where}: sensor stream of width {stream.shape[-1]} '
                                   f'(shape {tuple(stream.shape)}); expected '
                                   f'{self.sensor_channels} channels (1 force + 1025 A-scan)')
            e = int(ends[t])
            win = np.array(stream[max(0, e - self.window):e], dtype=np.float32)
            if len(win) < self.window:
                win = np.concatenate([np.zeros((self.window - len(win), win.shape[1]),
                                               np.float32), win])
            results['sensor'] = win[::-1][::self.decimate][::-1].copy()
        return results


@TRANSFORMS.register_module()
class PackVLAInputs(BaseTransform):
    """Pack a loaded step into ``inputs`` (dict of tensors) and a :class:`VLADataSample`.

    Args:
        meta_keys (tuple): Keys copied into the sample's metainfo.
    """

    def __init__(self, meta_keys=('episode', 'step', 'instruction', 'has_sensor',
                                  'sensor_loss_weight', 'num_steps')):
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        inputs = dict(images=torch.from_numpy(np.ascontiguousarray(results['images'])),
                      prev_action=torch.from_numpy(results['prev_action']),
                      sensor=None if results.get('sensor') is None else
                      torch.from_numpy(results['sensor']))
        sample = VLADataSample(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.gt_actions = torch.from_numpy(results['gt_actions'])
        sample.action_mask = torch.from_numpy(results['action_mask'])
        sample.prev_action = torch.from_numpy(results['prev_action'])
        return dict(inputs=inputs, data_samples=sample)
