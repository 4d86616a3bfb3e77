"""MMEngine visualizer that draws occupancy forecasts to every vis backend."""
import os
import os.path as osp
from typing import Dict, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from projects.registry import VISUALIZERS
from .occupancy_vis import draw_forecast_sample

_META_KEYS = ('classes', 'palette', 'free_label', 'point_cloud_range', 'voxel_size')


@VISUALIZERS.register_module()
class OccupancyVisualizer(Visualizer):
    """Visualizer for occupancy forecasts (GT beside prediction for every future step).

    :meth:`add_datasample` renders a prediction data sample (``gt_occ``, ``pred_occ``,
    ``baseline_occ`` uint8 ``(F, X, Y, Z)``, see the AerialWorld model contract) into a BEV
    panel (class and height views) and a 3-D panel, and sends them to all vis backends:
    ``LocalVisBackend`` writes ``<save_dir>/vis_image/<name>_bev_<step>.png`` and
    ``<name>_3d_<step>.png`` (``save_dir`` is the run's ``vis_data`` folder when built by the
    Runner), ``TensorboardVisBackend`` adds images tagged ``<name>_bev`` / ``<name>_3d``.

    Grid and class information comes from the constructor arguments or, for those left
    ``None``, from :meth:`set_dataset_meta` (the visualisation hook passes the dataset's
    metainfo: ``classes``, ``palette``, ``free_label``, ``point_cloud_range``,
    ``voxel_size``), and finally from the data sample's metainfo (``free_label``).

    Args:
        name (str): Instance name (MMEngine's ``ManagerMixin``). Defaults to ``'visualizer'``.
        vis_backends (list[dict], optional): Backend configs, e.g.
            ``[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]``.
        save_dir (str, optional): Root of the backends' files (the Runner sets it).
        class_names (Sequence[str], optional): Class names for the legend.
        palette (Sequence[Sequence[int]], optional): RGB (0..255) per class label.
        free_label (int, optional): Label of empty space.
        point_cloud_range (Sequence[float], optional): ``(x0, y0, z0, x1, y1, z1)`` metres.
        voxel_size (Sequence[float], optional): ``(dx, dy, dz)`` metres.
        views (Sequence[str]): BEV views, subset of ``('class', 'height')`` (``'3d'`` also
            allowed). Defaults to both.
        draw_3d (bool): Also render the 3-D panel. Defaults to True.
        draw_baseline (bool): Add the baseline row when the sample has ``baseline_occ``.
            Defaults to True.
        tile_size (int): BEV tile width in pixels. Defaults to 160.
        render_width (int): 3-D tile width in pixels. Defaults to 240.
        downsample_3d (str | int | Sequence[int]): Coarsening of the 3-D render, ``'auto'``
            keeps at most 100 cells across (200 x 200 grids render at 2x). Defaults to
            ``'auto'``.
        height_range (Sequence[float], optional): Colour-map range of the height view
            (metres). Defaults to the occupied height extent of each panel.
        **kwargs: Passed to :class:`mmengine.visualization.Visualizer`.
    """

    def __init__(self, name: str = 'visualizer', vis_backends=None,
                 save_dir: Optional[str] = None, class_names: Optional[Sequence[str]] = None,
                 palette=None, free_label: Optional[int] = None,
                 point_cloud_range: Optional[Sequence[float]] = None,
                 voxel_size: Optional[Sequence[float]] = None,
                 views: Sequence[str] = ('class', 'height'), draw_3d: bool = True,
                 draw_baseline: bool = True, tile_size: int = 160, render_width: int = 240,
                 downsample_3d: Union[str, int, Sequence[int]] = 'auto',
                 height_range: Optional[Sequence[float]] = None, **kwargs) -> None:
        super().__init__(name=name, vis_backends=vis_backends, save_dir=save_dir, **kwargs)
        self._explicit_meta = dict(classes=class_names, palette=palette, free_label=free_label,
                                   point_cloud_range=point_cloud_range, voxel_size=voxel_size)
        self._dataset_meta: Dict = {}
        self.views = tuple(views)
        self.draw_3d = draw_3d
        self.draw_baseline = draw_baseline
        self.tile_size = tile_size
        self.render_width = render_width
        self.downsample_3d = downsample_3d
        self.height_range = height_range

    @property
    def dataset_meta(self) -> Dict:
        """dict: Effective grid/class meta (explicit arguments over dataset metainfo).

        Assigning a dataset's metainfo (MMEngine's loops do ``visualizer.dataset_meta =
        dataset.metainfo``) is the same as :meth:`set_dataset_meta`.
        """
        meta = {k: self._dataset_meta.get(k) for k in _META_KEYS}
        meta.update({k: v for k, v in self._explicit_meta.items() if v is not None})
        return meta

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[Mapping]) -> None:
        self.set_dataset_meta(meta)

    def set_dataset_meta(self, meta: Optional[Mapping]) -> None:
        """Store the grid/class entries of a dataset's metainfo (others are ignored).

        Args:
            meta (Mapping, optional): Typically ``dataset.metainfo``; keys ``classes``,
                ``palette``, ``free_label``, ``point_cloud_range``, ``voxel_size``.
        """
        self._dataset_meta = {k: meta[k] for k in _META_KEYS if meta and k in meta}

    def draw_occupancy(self, data_sample, draw_gt: bool = True, draw_pred: bool = True,
                       draw_3d: Optional[bool] = None) -> Dict[str, np.ndarray]:
        """Render ``data_sample`` into panels without writing them.

        Returns:
            dict[str, np.ndarray]: ``'bev'`` (and ``'3d'``) RGB uint8 images.
        """
        meta = self.dataset_meta
        palette = meta.get('palette')
        classes = meta.get('classes')
        if palette is not None and classes is not None and len(palette) < len(classes):
            palette = None  # palette of another class set: fall back to the default colours
        return draw_forecast_sample(
            data_sample, free_label=meta.get('free_label'), palette=palette,
            class_names=classes, voxel_size=meta.get('voxel_size'),
            point_cloud_range=meta.get('point_cloud_range'), views=self.views,
            draw_3d=self.draw_3d if draw_3d is None else draw_3d, draw_gt=draw_gt,
            draw_pred=draw_pred, draw_baseline=self.draw_baseline, tile_size=self.tile_size,
            render_width=self.render_width, downsample_3d=self.downsample_3d,
            height_range=self.height_range)

    @master_only
    def add_datasample(self, name: str, image: Optional[np.ndarray] = None,
                       data_sample=None, draw_gt: bool = True, draw_pred: bool = True,
                       show: bool = False, wait_time: float = 0, out_file: Optional[str] = None,
                       step: int = 0, draw_3d: Optional[bool] = None
                       ) -> Dict[str, np.ndarray]:
        """Render a prediction sample and write it to all backends (and ``out_file``).

        Args:
            name (str): Image name; the panels are stored as ``<name>_bev`` / ``<name>_3d``.
                Use no ``/`` (``LocalVisBackend`` writes flat file names).
            image (np.ndarray, optional): An RGB uint8 image. Without ``data_sample`` it is
                written as is under ``name``; with one it is ignored (occupancy has no
                underlying image).
            data_sample (BaseDataElement | dict, optional): Prediction with ``gt_occ``,
                ``pred_occ`` (and ``baseline_occ``).
            draw_gt (bool): Draw the GT rows. Defaults to True.
            draw_pred (bool): Draw the prediction rows. Defaults to True.
            show (bool): Also show the BEV panel in a window (needs a display).
            wait_time (float): Seconds to wait when showing.
            out_file (str, optional): Also write the BEV panel to this PNG path and the 3-D
                panel next to it (``<stem>_3d.png``).
            step (int): Global step of the images. Defaults to 0.
            draw_3d (bool, optional): Overrides the constructor's ``draw_3d``.

        Returns:
            dict[str, np.ndarray]: The images written, by suffix (``'bev'``, ``'3d'``), or
            ``{'image': image}`` when only ``image`` was given.

        Raises:
            ValueError: Neither ``image`` nor ``data_sample`` given.
        """
        if data_sample is None:
            if image is None:
                raise ValueError('OccupancyVisualizer.add_datasample: pass data_sample (an '
                                 'occupancy prediction) or image')
            images = {'image': image}
            self.add_image(name, image, step)
        else:
            images = self.draw_occupancy(data_sample, draw_gt, draw_pred, draw_3d)
            for kind, img in images.items():
                self.add_image(f'{name}_{kind}', img, step)
        if out_file is not None:
            write_png(out_file, images.get('bev', images.get('image')))
            if '3d' in images:
                write_png(osp.splitext(out_file)[0] + '_3d.png', images['3d'])
        if show:
            self.show(images.get('bev', images.get('image')), win_name=name,
                      wait_time=wait_time)
        return images


def write_png(path: str, image: np.ndarray) -> None:
    """Write an RGB uint8 image to ``path`` (folders are created).

    Raises:
        OSError: OpenCV could not write the file.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write image {path!r}')
