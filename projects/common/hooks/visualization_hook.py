"""Draw occupancy forecasts (GT beside prediction per future step) during val / test."""
import os.path as osp
from typing import Dict, Optional, Sequence, Union

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from projects.common.visualization.occupancy_vis import draw_forecast_sample
from projects.common.visualization.occupancy_visualizer import OccupancyVisualizer, write_png
from projects.registry import HOOKS

_FIELDS = ('gt_occ', 'pred_occ')


def _dataset_metainfo(runner, mode: str) -> Dict:
    """Metainfo of the dataset of the running val/test loop ({} when unavailable)."""
    loop = runner.val_loop if mode == 'val' else runner.test_loop
    dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
    meta = getattr(dataset, 'metainfo', None)
    return dict(meta) if meta else {}


def _global_step(runner) -> int:
    """Training iteration, without building a train loop that does not exist (test)."""
    if isinstance(runner._train_loop, dict) or runner._train_loop is None:
        return 0
    return runner.iter


@HOOKS.register_module()
class OccupancyVisualizationHook(Hook):
    """Render GT vs prediction for every future step of a few val/test samples.

    In ``after_val_iter`` / ``after_test_iter`` the first ``max_samples`` predictions of the
    epoch (they are the same windows every epoch with a non-shuffling sampler) are drawn as a
    BEV panel (class and height views; rows GT / Pred / Baseline, one column per future step)
    and, with ``draw_3d``, a 3-D panel, and written through ``runner.visualizer``:

    * an :class:`~projects.common.visualization.OccupancyVisualizer` draws them itself
      (``add_datasample``) with its own settings (views, baseline rows, sizes; only
      ``draw_3d`` is taken from the hook) and the dataset's metainfo;
    * any other visualizer (the plain MMEngine ``Visualizer`` of the base runtime) gets the
      images rendered here through ``add_image``.

    Either way the ``LocalVisBackend`` writes
    ``<work_dir>/<timestamp>/vis_data/vis_image/{val,test}_occupancy_<k>_{bev,3d}_<iter>.png``
    and the ``TensorboardVisBackend`` adds images with the tags
    ``{val,test}_occupancy_<k>_{bev,3d}`` at the training iteration. With ``out_dir`` set
    (``tools/test.py --show-dir DIR`` sets it) the panels are also written to
    ``out_dir/<mode>_<k>_<session>_f<frame>_{bev,3d}.png`` (``out_dir`` is used as given;
    relative paths are relative to the working directory). Only the main process draws.

    Predictions must carry ``gt_occ`` / ``pred_occ`` (and optionally ``baseline_occ``) uint8
    ``(F, X, Y, Z)``; batches without them are skipped with one warning.

    Args:
        interval (int): Draw in every ``interval``-th validation (or test) run, counting from
            the first. Defaults to 1 (every run).
        max_samples (int): Samples drawn per run (>= 0). Defaults to 2.
        out_dir (str, optional): Also write PNG files here. Defaults to None.
        draw_3d (bool): Also draw the 3-D panel. Defaults to True.
        draw_baseline (bool): Add the copy-last-frame baseline rows (fallback renderer) when
            the predictions have ``baseline_occ``. Defaults to True.
        views (Sequence[str]): BEV views for the fallback renderer. Defaults to
            ``('class', 'height')``.
        palette (Sequence[Sequence[int]], optional): RGB per class for the fallback renderer;
            defaults to the dataset metainfo's ``palette``, else generated colours.
        tile_size (int): BEV tile width for the fallback renderer. Defaults to 160.
        render_width (int): 3-D tile width for the fallback renderer. Defaults to 240.
        downsample_3d (str | int | Sequence[int]): 3-D coarsening for the fallback renderer.
            Defaults to ``'auto'`` (at most 100 cells across).

    Raises:
        ValueError: ``interval < 1`` or ``max_samples < 0``.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 1, max_samples: int = 2, out_dir: Optional[str] = None,
                 draw_3d: bool = True, draw_baseline: bool = True,
                 views: Sequence[str] = ('class', 'height'), palette=None,
                 tile_size: int = 160, render_width: int = 240,
                 downsample_3d: Union[str, int, Sequence[int]] = 'auto') -> None:
        if int(interval) < 1:
            raise ValueError(f'OccupancyVisualizationHook.interval must be >= 1, got {interval}')
        if int(max_samples) < 0:
            raise ValueError('OccupancyVisualizationHook.max_samples must be >= 0, got '
                             f'{max_samples}')
        self.interval = int(interval)
        self.max_samples = int(max_samples)
        self.out_dir = out_dir
        self.draw_3d = draw_3d
        self.draw_baseline = draw_baseline
        self.views = tuple(views)
        self.palette = palette
        self.tile_size = tile_size
        self.render_width = render_width
        self.downsample_3d = downsample_3d
        self._runs = {'val': 0, 'test': 0}
        self._drawn = 0
        self._active = False
        self._warned = False
        self._meta: Dict = {}

    # ------------------------------------------------------------------ epoch bookkeeping
    def _start(self, runner, mode: str) -> None:
        self._runs[mode] += 1
        self._drawn = 0
        self._active = ((self._runs[mode] - 1) % self.interval == 0 and self.max_samples > 0
                        and is_main_process())
        if not self._active:
            return
        self._meta = _dataset_metainfo(runner, mode)
        vis = runner.visualizer
        if isinstance(vis, OccupancyVisualizer):
            vis.set_dataset_meta(self._meta)

    def before_val_epoch(self, runner) -> None:
        """Reset the per-epoch sample counter (and decide whether this run draws)."""
        self._start(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        """Reset the per-epoch sample counter (and decide whether this run draws)."""
        self._start(runner, 'test')

    # ------------------------------------------------------------------ drawing
    def _render(self, sample) -> Dict:
        meta = self._meta
        palette = self.palette if self.palette is not None else meta.get('palette')
        classes = meta.get('classes')
        if palette is not None and classes is not None and len(palette) < len(classes):
            palette = None
        return draw_forecast_sample(
            sample, free_label=meta.get('free_label'), palette=palette, class_names=classes,
            voxel_size=meta.get('voxel_size'), point_cloud_range=meta.get('point_cloud_range'),
            views=self.views, draw_3d=self.draw_3d, draw_baseline=self.draw_baseline,
            tile_size=self.tile_size, render_width=self.render_width,
            downsample_3d=self.downsample_3d)

    def _file_stem(self, mode: str, k: int, sample) -> str:
        meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
        stem = f'{mode}_{k:02d}'
        if 'session' in meta:
            stem += f'_{meta["session"]}'
        frames, hist = meta.get('frame_indices'), meta.get('num_history')
        if frames is not None and hist is not None and len(frames) > hist:
            stem += f'_f{int(frames[hist]):06d}'
        return stem

    def _process(self, runner, outputs, mode: str) -> None:
        if not self._active or not outputs or self._drawn >= self.max_samples:
            return
        step = _global_step(runner)
        vis = runner.visualizer
        for sample in outputs:
            if self._drawn >= self.max_samples:
                break
            if not all(f in sample for f in _FIELDS):
                if not self._warned:
                    runner.logger.warning(
                        'OccupancyVisualizationHook: predictions have no '
                        f'{" / ".join(_FIELDS)} fields; nothing to draw')
                    self._warned = True
                return
            k = self._drawn
            name = f'{mode}_occupancy_{k}'
            if isinstance(vis, OccupancyVisualizer):
                images = vis.add_datasample(name, data_sample=sample, step=step,
                                            draw_3d=self.draw_3d)
            else:
                images = self._render(sample)
                for kind, img in images.items():
                    vis.add_image(f'{name}_{kind}', img, step)
            if self.out_dir is not None:
                stem = osp.join(self.out_dir, self._file_stem(mode, k, sample))
                for kind, img in images.items():
                    write_png(f'{stem}_{kind}.png', img)
            self._drawn += 1

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Draw the next predictions until ``max_samples`` are drawn this epoch."""
        self._process(runner, outputs, 'val')

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Draw the next predictions until ``max_samples`` are drawn this epoch."""
        self._process(runner, outputs, 'test')
