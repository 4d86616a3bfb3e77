"""Pipeline transforms of the video world model. Every random draw is made once per clip, so
all frames of a clip get the same augmentation (sequence-consistent augmentation)."""
import os.path as osp
from typing import Sequence, Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS
from projects.video_world.structures import VideoDataSample

__all__ = ['LoadVideoFrames', 'ResizeVideo', 'VideoAugmentation', 'PackVideoInputs']


@TRANSFORMS.register_module()
class LoadVideoFrames(BaseTransform):
    """Read the frames of a clip into ``results['frames']``, uint8 ``(T, H, W, 3)`` RGB.

    Uses ``results['img_paths']`` (T files) or passes already decoded ``results['frames']``
    (RLDS) through after checking them.

    Raises:
        FileNotFoundError: A frame file does not exist (named, with the clip id).
        ValueError: A file cannot be decoded, or frames of a clip differ in size (named).
    """

    def transform(self, results: dict) -> dict:
        """Load the frames (see the class docstring)."""
        clip = results.get('clip_id', '?')
        if 'img_paths' in results:
            frames = []
            for path in results['img_paths']:
                if not osp.isfile(path):
                    raise FileNotFoundError(f'missing frame {path} (clip {clip})')
                img = cv2.imread(path, cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f'cannot decode frame {path} (clip {clip})')
                frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            sizes = {f.shape for f in frames}
            if len(sizes) != 1:
                raise ValueError(f'frames of clip {clip} differ in size: {sorted(sizes)} '
                                 f'({results["img_paths"][0]} ...)')
            results['frames'] = np.stack(frames)
        elif 'frames' not in results:
            raise KeyError(f'LoadVideoFrames: clip {clip} has neither img_paths nor frames')
        frames = results['frames']
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f'LoadVideoFrames: clip {clip} frames must be uint8 (T, H, W, 3), '
                             f'got {frames.dtype} {frames.shape}')
        results['ori_shape'] = frames.shape[1:3]
        return results


@TRANSFORMS.register_module()
class ResizeVideo(BaseTransform):
    """Resize every frame to ``size`` = (height, width) (``cv2.INTER_AREA``).

    Args:
        size (Sequence[int]): Output (height, width).
    """

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def transform(self, results: dict) -> dict:
        """Resize ``results['frames']``."""
        h, w = self.size
        frames = results['frames']
        if frames.shape[1:3] != (h, w):
            results['frames'] = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
                                          for f in frames])
        return results


@TRANSFORMS.register_module()
class VideoAugmentation(BaseTransform):
    """Sequence-consistent photometric and geometric augmentation (one draw per clip).

    Per clip: brightness factor ``b ~ U(1 - brightness, 1 + brightness)``, contrast factor
    ``c ~ U(1 - contrast, 1 + contrast)`` (about the clip's mean grey
    level, so the clip's temporal intensity changes are kept), a crop of area
    fraction ``s ~ U(crop_scale)`` with the image's aspect ratio at a random position
    (resized back to the input size), and a horizontal flip with probability ``flip_prob``
    that negates the action dimensions ``flip_action_dims`` (lateral motion, yaw rate,
    curvature: mirrored motion turns the other way). The same draw applies to every frame
    and to ``shuffled_actions``. The draw is stored in ``results['aug_params']``.

    Args:
        brightness (float): Maximum relative brightness change. Defaults to 0.2.
        contrast (float): Maximum relative contrast change. Defaults to 0.2.
        crop_scale (Tuple[float, float]): Range of the kept area fraction. Defaults to
            (0.8, 1.0).
        flip_prob (float): Horizontal flip probability. Defaults to 0.5.
        flip_action_dims (Sequence[int]): Action dimensions negated by a flip. Defaults to
            () (no action changes sign; set it for the data's lateral / yaw dimensions).

    Raises:
        ValueError: Parameters out of range.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2,
                 crop_scale: Tuple[float, float] = (0.8, 1.0), flip_prob: float = 0.5,
                 flip_action_dims: Sequence[int] = ()) -> None:
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f'VideoAugmentation: crop_scale={crop_scale} must satisfy '
                             '0 < lo <= hi <= 1')
        if not 0 <= flip_prob <= 1 or brightness < 0 or contrast < 0:
            raise ValueError('VideoAugmentation: flip_prob must be in [0, 1], brightness and '
                             'contrast >= 0')
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.crop_scale, self.flip_prob = tuple(crop_scale), float(flip_prob)
        self.flip_action_dims = list(flip_action_dims)

    def draw(self, height: int, width: int, rng: np.random.Generator) -> dict:
        """One draw of the parameters for a clip of ``height x width`` frames."""
        scale = rng.uniform(*self.crop_scale)
        ch = max(1, int(round(height * np.sqrt(scale))))
        cw = max(1, int(round(width * np.sqrt(scale))))
        return dict(brightness=float(rng.uniform(1 - self.brightness, 1 + self.brightness)),
                    contrast=float(rng.uniform(1 - self.contrast, 1 + self.contrast)),
                    crop=(int(rng.integers(0, height - ch + 1)),
                          int(rng.integers(0, width - cw + 1)), ch, cw),
                    flip=bool(rng.random() < self.flip_prob))

    def apply(self, frames: np.ndarray, params: dict) -> np.ndarray:
        """Apply one draw to uint8 frames ``(T, H, W, 3)``; returns the same shape."""
        t, h, w, _ = frames.shape
        y0, x0, ch, cw = params['crop']
        out = frames[:, y0:y0 + ch, x0:x0 + cw]
        if (ch, cw) != (h, w):
            out = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in out])
        if params['flip']:
            out = out[:, :, ::-1]
        x = out.astype(np.float32)
        mean = x.mean()
        x = (x - mean) * params['contrast'] + mean
        x = x * params['brightness']
        return np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))

    def flip_actions(self, actions: np.ndarray) -> np.ndarray:
        """Negate ``flip_action_dims`` of ``(T - 1, A)`` actions.

        Raises:
            ValueError: A dimension is out of range.
        """
        actions = np.array(actions, dtype=np.float32, copy=True)
        bad = [d for d in self.flip_action_dims if not -actions.shape[1] <= d < actions.shape[1]]
        if bad:
            raise ValueError(f'VideoAugmentation: flip_action_dims {bad} out of range for '
                             f'{actions.shape[1]}-D actions')
        actions[:, self.flip_action_dims] *= -1
        return actions

    def transform(self, results: dict) -> dict:
        """Augment a clip with one draw (see the class docstring)."""
        frames = results['frames']
        params = self.draw(frames.shape[1], frames.shape[2], np.random.default_rng(
            np.random.randint(0, 2 ** 31 - 1)))
        results['frames'] = self.apply(frames, params)
        if params['flip']:
            for key in ('actions', 'shuffled_actions'):
                if key in results:
                    results[key] = self.flip_actions(results[key])
        results['aug_params'] = params
        return results


@TRANSFORMS.register_module()
class PackVideoInputs(BaseTransform):
    """Pack a clip into ``{'inputs': {...}, 'data_samples': VideoDataSample}``.

    ``inputs['frames']``: uint8 ``(T, 3, H, W)`` (the data preprocessor converts to
    [-1, 1]); ``inputs['actions']`` / ``inputs['shuffled_actions']``: float32 ``(T-1, A)``.

    Args:
        meta_keys (Sequence[str]): Keys copied into the sample's metainfo.

    Raises:
        ValueError: ``actions`` do not have ``T - 1`` rows.
    """

    def __init__(self, meta_keys: Sequence[str] = ('clip_id', 'sequence', 'source',
                                                   'frame_indices', 'shuffled_from',
                                                   'ori_shape', 'aug_params')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack (see the class docstring)."""
        frames = torch.from_numpy(np.ascontiguousarray(results['frames'])).permute(0, 3, 1, 2)
        actions = torch.as_tensor(np.asarray(results['actions'], dtype=np.float32))
        if actions.shape[0] != frames.shape[0] - 1:
            raise ValueError(f'PackVideoInputs: clip {results.get("clip_id")} has '
                             f'{frames.shape[0]} frames and {actions.shape[0]} actions')
        inputs = dict(frames=frames.contiguous(), actions=actions)
        if 'shuffled_actions' in results:
            inputs['shuffled_actions'] = torch.as_tensor(
                np.asarray(results['shuffled_actions'], dtype=np.float32))
        sample = VideoDataSample()
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)
