"""Image grids (ground truth / reconstruction / prediction per step) and weight / gradient
histograms of the video world model, written through the runner's visualizer (LocalVisBackend:
PNGs in the work dir; TensorboardVisBackend: TensorBoard images and histograms)."""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['rollout_grid', 'VideoWorldVisualizationHook']


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3)`` uint8."""
    x = ((frames.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.permute(0, 2, 3, 1).numpy()


def rollout_grid(samples: Sequence, pad: int = 2) -> np.ndarray:
    """One RGB image with three rows per clip: ground truth, reconstruction, prediction.

    The prediction row shows the observed context frames (greyed out, so they are not read as
    predictions) followed by the open-loop predictions, aligned with the ground-truth frames.

    Args:
        samples (Sequence): Predicted data samples (``gt_frames`` ``(T, 3, H, W)``,
            ``recon_frames`` ``(T or R, 3, H, W)``, ``pred_frames`` ``(K, 3, H, W)``,
            metainfo ``num_context``), or their dicts.
        pad (int): White padding between tiles (pixels).

    Returns:
        ndarray: ``(rows * (H + pad), T * (W + pad), 3)`` uint8.
    """
    rows = []
    for s in samples:
        get = s.get if isinstance(s, dict) else (lambda k, d=None, _s=s: getattr(_s, k, d))
        gt = _to_uint8(get('gt_frames'))
        t, h, w, _ = gt.shape
        c = int(get('num_context'))
        recon = _to_uint8(get('recon_frames'))
        pred = _to_uint8(get('pred_frames'))
        blank = np.full((h, w, 3), 255, np.uint8)
        recon_row = [recon[i] if i < len(recon) else blank for i in range(t)]
        pred_row = [(gt[i] // 2 + 64).astype(np.uint8) for i in range(c)] + list(pred)
        rows += [list(gt), recon_row, pred_row]
    h, w = rows[0][0].shape[:2]
    t = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad), t * (w + pad), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for i, img in enumerate(row):
            canvas[r * (h + pad):r * (h + pad) + h, i * (w + pad):i * (w + pad) + w] = img
    return canvas


@HOOKS.register_module()
class VideoWorldVisualizationHook(Hook):
    """Rollout image grids and weight / gradient histograms every N iterations.

    * Every ``interval`` training iterations: the model's ``predict`` on the first
      ``num_samples`` clips of the current batch, as :func:`rollout_grid`, logged as image
      ``train/rollout``; on the first validation batch of every validation: ``val_rollout``.
      Images go to every visualizer backend (PNG files under ``<work_dir>/<timestamp>/
      vis_data/vis_image/`` with ``LocalVisBackend``, TensorBoard with
      ``TensorboardVisBackend``).
    * Every ``histogram_interval`` iterations (when a TensorBoard backend is configured):
      histograms ``weights/<name>`` and ``gradients/<name>`` of every trainable parameter
      (gradients captured by tensor hooks during that iteration's backward, before the
      optimizer wrapper zeroes them).

    Args:
        interval (int): Iterations between training image grids. Defaults to 100.
        histogram_interval (int): Iterations between histograms (0 disables). Defaults to
            the value of ``interval``.
        num_samples (int): Clips per grid. Defaults to 2.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 100, histogram_interval: Optional[int] = None,
                 num_samples: int = 2) -> None:
        self.interval = int(interval)
        self.histogram_interval = int(interval if histogram_interval is None
                                      else histogram_interval)
        self.num_samples = int(num_samples)
        self._grads: dict = {}
        self._capture = False
        self._handles: List = []

    @staticmethod
    def _module(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        """Register gradient-capturing tensor hooks (active only on histogram iterations)."""
        if self.histogram_interval <= 0:
            return
        for name, p in self._module(runner).named_parameters():
            if p.requires_grad:
                self._handles.append(p.register_hook(self._make_grad_hook(name)))

    def _make_grad_hook(self, name: str):
        def _hook(grad):
            if self._capture:
                prev = self._grads.get(name)
                g = grad.detach().float().cpu()
                self._grads[name] = g if prev is None else prev + g
            return grad
        return _hook

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Turn gradient capture on for histogram iterations."""
        self._grads = {}
        self._capture = (self.histogram_interval > 0 and
                         (runner.iter + 1) % self.histogram_interval == 0)

    def _tensorboard(self, runner):
        try:
            return runner.visualizer.get_backend('TensorboardVisBackend')
        except Exception:  # noqa: BLE001 - no TensorBoard backend configured
            return None

    def _log_grid(self, runner, name: str, samples, step: int) -> None:
        if samples:
            runner.visualizer.add_image(name, rollout_grid(samples[:self.num_samples]),
                                        step=step)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Write the training grid and the histograms when due."""
        step = runner.iter + 1
        if self._capture:
            self._capture = False
            backend = self._tensorboard(runner)
            if backend is not None:
                writer = backend.experiment
                for n, p in self._module(runner).named_parameters():
                    if p.requires_grad:
                        writer.add_histogram(f'weights/{n}', p.detach().float().cpu(), step)
                        if n in self._grads:
                            writer.add_histogram(f'gradients/{n}', self._grads[n], step)
            self._grads = {}
        if self.interval > 0 and step % self.interval == 0 and data_batch is not None:
            model = self._module(runner)
            was_training = model.training
            model.eval()
            with torch.no_grad():
                batch = {k: (v[:self.num_samples] if isinstance(v, list) else v)
                         for k, v in data_batch.items()}
                batch['inputs'] = {k: v[:self.num_samples]
                                   for k, v in data_batch['inputs'].items()}
                samples = model.test_step(batch)
            model.train(was_training)
            self._log_grid(runner, 'train_rollout', samples, step)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Write the grid of the first validation batch."""
        if batch_idx == 0 and outputs:
            self._log_grid(runner, 'val_rollout', outputs, runner.iter)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Write the grid of the first test batch."""
        if batch_idx == 0 and outputs:
            self._log_grid(runner, 'test_rollout', outputs, runner.iter)

    def after_run(self, runner) -> None:
        """Remove the tensor hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
