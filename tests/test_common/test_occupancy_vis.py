"""Occupancy visualisation: renderers, visualizer, visualisation / collapse hooks, tools."""
import glob
import importlib.util
import json
import os.path as osp
from types import SimpleNamespace
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch.utils.data import DataLoader

from projects.common.hooks import OccupancyCollapseHook, OccupancyVisualizationHook
from projects.common.visualization import (OccupancyVisualizer, bev_class_image,
                                           bev_height_image, compose_forecast_panel,
                                           compose_panel, default_palette, downsample_labels,
                                           draw_forecast_sample, height_colormap, top_heights,
                                           voxel_render)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FREE = 6
PALETTE = [(150, 150, 150), (230, 120, 60), (160, 60, 200), (60, 60, 60), (110, 180, 80),
           (240, 210, 40), (255, 255, 255)]
CLASSES = ('other', 'building', 'bridge', 'road', 'terrain', 'city_furniture', 'free')


def _load_tool(rel_path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scene(x=12, y=10, z=8):
    """Ground (road) everywhere, a building block and a floating bridge voxel."""
    occ = np.full((x, y, z), FREE, dtype=np.uint8)
    occ[:, :, 0] = 3
    occ[2:5, 3:6, 1:6] = 1
    occ[8, 7, 4] = 2
    return occ


# ----------------------------------------------------------------------------- renderers
def test_bev_class_image_picks_top_most_class_and_orientation():
    occ = np.full((4, 3, 5), FREE, dtype=np.uint8)
    occ[0, 0, 0] = 3   # road below ...
    occ[0, 0, 2] = 1   # ... a building voxel: the building is on top
    occ[3, 2, 4] = 5   # top voxel of the grid
    img = bev_class_image(occ, FREE, PALETTE, background=(1, 2, 3))
    assert img.shape == (4, 3, 3) and img.dtype == np.uint8
    # Forward (+x) is up and left (+y) is left: voxel column (i, j) -> pixel (X-1-i, Y-1-j).
    assert tuple(img[3, 2]) == PALETTE[1]
    assert tuple(img[0, 0]) == PALETTE[5]
    assert tuple(img[1, 1]) == (1, 2, 3)  # empty column -> background
    # torch input works the same
    assert np.array_equal(bev_class_image(torch.from_numpy(occ), FREE, PALETTE,
                                          background=(1, 2, 3)), img)


def test_top_heights_and_height_image():
    occ = np.full((3, 3, 10), FREE, dtype=np.uint8)
    occ[0, 0, :4] = 1   # top index 3
    occ[1, 1, 9] = 4    # top index 9
    vs, pcr = [0.5, 0.5, 2.0], [-1, -1, -5, 1, 1, 15]
    h = top_heights(occ, FREE, vs, pcr)
    assert h[0, 0] == pytest.approx(-5 + 3.5 * 2.0)
    assert h[1, 1] == pytest.approx(-5 + 9.5 * 2.0)
    assert np.isnan(h[2, 2])
    assert np.array_equal(top_heights(occ, FREE)[[0, 1], [0, 1]], [3.0, 9.0])
    img = bev_height_image(occ, FREE, vs, pcr, height_range=(h[0, 0], h[1, 1]))
    assert tuple(img[2, 2]) == tuple(height_colormap(0.0))      # column (0, 0): lowest
    assert tuple(img[1, 1]) == tuple(height_colormap(1.0))      # column (1, 1): highest
    assert tuple(img[0, 0]) == (255, 255, 255)                  # empty column (2, 2)
    with pytest.raises(ValueError, match='high > low'):
        bev_height_image(occ, FREE, vs, pcr, height_range=(3, 3))


def test_downsample_labels_keeps_thin_structures():
    occ = np.full((4, 4, 2), FREE, dtype=np.uint8)
    occ[0, 0, 0] = 2                      # one voxel of class 2 in block (0, 0, 0)
    occ[2:4, 2:4, :] = 1
    occ[3, 3, 1] = 4                      # block (1, 1, 0): 7 x class 1, 1 x class 4
    out = downsample_labels(occ, (2, 2, 2), FREE)
    assert out.shape == (2, 2, 1)
    assert out[0, 0, 0] == 2 and out[1, 1, 0] == 1 and out[0, 1, 0] == FREE
    assert downsample_labels(np.full((3, 3, 3), FREE, np.uint8), 2, FREE).shape == (2, 2, 2)


def test_voxel_render_is_deterministic_and_occludes():
    occ = _scene()
    img = voxel_render(occ, FREE, PALETTE, voxel_size=(1, 1, 1), width=200)
    assert img.shape[1] == 200 and img.dtype == np.uint8
    assert np.array_equal(img, voxel_render(occ, FREE, PALETTE, voxel_size=(1, 1, 1),
                                            width=200))
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    for label in (1, 2, 3):  # top faces are drawn in the exact palette colour
        assert PALETTE[label] in colours

    def pixels(vol, label):
        out = voxel_render(vol, FREE, PALETTE, width=200, draw_bounds=False)
        return int(np.all(out == PALETTE[label], axis=-1).sum())

    back = np.full((6, 6, 6), FREE, np.uint8)
    back[4, 4, 0:2] = 2
    both = back.copy()
    both[2:4, 2:4, 0:6] = 1   # a tall block between the camera (-x, -y, +z) and it
    assert pixels(both, 2) < pixels(back, 2)
    empty = voxel_render(np.full((6, 6, 6), FREE, np.uint8), FREE, PALETTE, width=100,
                         draw_bounds=False)
    assert (empty == 255).all()
    with pytest.raises(ValueError, match='elevation'):
        voxel_render(occ, FREE, PALETTE, elevation=0)
    with pytest.raises(TypeError, match='integer'):
        voxel_render(occ.astype(np.float32), FREE)


def test_panel_shape_is_rows_by_steps():
    occ = _scene()
    seq = np.stack([occ, np.roll(occ, 1, 0), np.roll(occ, 2, 0)])  # F = 3

    def panel(n_rows, n_steps, views=('class', 'height')):
        rows = [(f'r{i}', seq[:n_steps]) for i in range(n_rows)]
        return compose_panel(rows, FREE, PALETTE, views=views, tile_size=40, legend=False,
                             gap=4, step_labels=[f's{i}' for i in range(n_steps)])

    base = panel(2, 2)
    # one more step -> one more tile column; one more source -> one more tile row per view
    assert panel(2, 3).shape[1] - base.shape[1] == 40 + 4
    tile_h = 40 * occ.shape[0] // occ.shape[1] + 4  # BEV tiles keep the X / Y aspect
    assert panel(3, 2).shape[0] - base.shape[0] == 2 * tile_h
    assert panel(2, 2, views=('class', )).shape[0] == base.shape[0] - 2 * tile_h
    full = compose_forecast_panel(seq, seq[::-1], seq, free_label=FREE, palette=PALETTE,
                                  class_names=CLASSES, tile_size=40)
    assert full.dtype == np.uint8 and full.ndim == 3
    with pytest.raises(ValueError, match='shape'):
        compose_forecast_panel(seq, seq[:2], free_label=FREE)
    with pytest.raises(ValueError, match='views'):
        compose_panel([('a', seq)], FREE, views=('side', ))


def test_draw_forecast_sample_panels():
    seq = torch.from_numpy(np.stack([_scene()] * 2))
    sample = BaseDataElement(metainfo=dict(free_label=FREE, num_history=2,
                                           timestamps=[0.0, 0.5, 1.0, 1.5], session='s0'))
    sample.gt_occ, sample.pred_occ, sample.baseline_occ = seq, seq, seq
    out = draw_forecast_sample(sample, palette=PALETTE, tile_size=32, render_width=64)
    assert set(out) == {'bev', '3d'}
    assert default_palette(7, FREE).shape == (7, 3)
    with pytest.raises(KeyError):
        draw_forecast_sample(BaseDataElement(metainfo=dict(free_label=FREE)))


# ----------------------------------------------------------------------------- runner
class _ToyOccModel(BaseModel):
    """Returns predictions in the AerialWorld contract format (no learning)."""

    def __init__(self, collapse=False):
        super().__init__()
        self.collapse = collapse
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='predict'):
        outs = []
        for occ, ds in zip(inputs, data_samples):
            s = BaseDataElement(metainfo=ds.metainfo)
            s.gt_occ = occ[2:]
            s.baseline_occ = occ[1:2].expand_as(occ[2:]).contiguous()
            s.pred_occ = torch.full_like(occ[2:], FREE) if self.collapse else occ[2:].clone()
            outs.append(s)
        return outs


class _ToyMetric:
    """Minimal metric (defined lazily so BaseMetric's registry is not touched at import)."""

    @staticmethod
    def build():
        from mmengine.evaluator import BaseMetric

        class ToyMetric(BaseMetric):
            def process(self, data_batch, data_samples):
                self.results.append(len(data_samples))

            def compute_metrics(self, results):
                return {'count': float(sum(results))}

        return ToyMetric()


def _toy_loader(n=3):
    occ = torch.from_numpy(np.stack([np.roll(_scene(), i, 0) for i in range(4)]))
    items = [dict(inputs=occ, data_samples=BaseDataElement(metainfo=dict(
        free_label=FREE, num_classes=7, num_history=2, num_future=2, session=f'toy{i}',
        frame_indices=[0, 1, 2, 3], timestamps=[0.0, 0.5, 1.0, 1.5]))) for i in range(n)]
    from mmengine.dataset import pseudo_collate
    return DataLoader(items, batch_size=2, collate_fn=pseudo_collate)


def _runner(work_dir, name, visualizer, out_dir=None, collapse=False):
    from mmengine.runner import Runner
    return Runner(
        model=_ToyOccModel(collapse), work_dir=str(work_dir), experiment_name=name,
        val_dataloader=_toy_loader(), val_cfg=dict(), val_evaluator=[_ToyMetric.build()],
        test_dataloader=_toy_loader(), test_cfg=dict(), test_evaluator=[_ToyMetric.build()],
        default_scope='projects', visualizer=visualizer,
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='OccupancyVisualizationHook', max_samples=2, out_dir=out_dir),
                      dict(type='OccupancyCollapseHook')],
        log_level='WARNING')


def _tb_image_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(osp.join(log_dir, 'vis_data', 'events.out.tfevents.*'))
    assert events, f'no TensorBoard event file under {log_dir}'
    acc = EventAccumulator(osp.dirname(events[0]), size_guidance={'images': 0})
    acc.Reload()
    return set(acc.Tags()['images'])


@pytest.mark.parametrize('vis_type', ['OccupancyVisualizer', 'Visualizer'])
def test_validation_writes_png_and_tensorboard_images(tmp_path, vis_type):
    backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
    visualizer = dict(type=vis_type, vis_backends=backends,
                      name=f'vis_test_{vis_type}_{tmp_path.name}')
    if vis_type == 'OccupancyVisualizer':
        visualizer.update(palette=PALETTE, class_names=CLASSES, tile_size=32,
                          render_width=64)
    show_dir = tmp_path / 'show'
    runner = _runner(tmp_path / 'wd', f'exp_{vis_type}_{tmp_path.name}', visualizer,
                     out_dir=str(show_dir))
    runner.val()
    if vis_type == 'OccupancyVisualizer':
        assert isinstance(runner.visualizer, OccupancyVisualizer)
    pngs = sorted(osp.basename(p) for p in glob.glob(
        osp.join(runner.log_dir, 'vis_data', 'vis_image', '*.png')))
    assert pngs == ['val_occupancy_0_3d_0.png', 'val_occupancy_0_bev_0.png',
                    'val_occupancy_1_3d_0.png', 'val_occupancy_1_bev_0.png']
    img = cv2.imread(osp.join(runner.log_dir, 'vis_data', 'vis_image', pngs[1]))
    assert img is not None and img.shape[0] > 32
    shown = sorted(osp.basename(p) for p in glob.glob(str(show_dir / '*.png')))
    assert shown == ['val_00_toy0_f000002_3d.png', 'val_00_toy0_f000002_bev.png',
                     'val_01_toy1_f000002_3d.png', 'val_01_toy1_f000002_bev.png']
    runner.visualizer.close()  # flush the TensorBoard writer
    assert _tb_image_tags(runner.log_dir) == {'val_occupancy_0_bev', 'val_occupancy_0_3d',
                                              'val_occupancy_1_bev', 'val_occupancy_1_3d'}
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        record = json.loads(f.readline())
    assert record['collapse/pred_rate'] == pytest.approx(record['collapse/gt_rate'])
    assert record['collapse/ratio'] == pytest.approx(1.0)


def test_test_run_uses_test_prefix(tmp_path):
    backends = [dict(type='LocalVisBackend')]
    runner = _runner(tmp_path / 'wd', f'exp_test_{tmp_path.name}',
                     dict(type='Visualizer', vis_backends=backends,
                          name=f'vis_t_{tmp_path.name}'), collapse=True)
    runner.test()
    pngs = glob.glob(osp.join(runner.log_dir, 'vis_data', 'vis_image', 'test_occupancy_*.png'))
    assert len(pngs) == 4


# ----------------------------------------------------------------------------- collapse hook
def _fake_runner(name):
    return SimpleNamespace(logger=mock.Mock(), message_hub=MessageHub.get_instance(name))


def _pred(pred_rate, gt_rate=0.2, n=1000):
    gt = torch.full((n, ), FREE, dtype=torch.uint8)
    gt[:int(gt_rate * n)] = 1
    pred = torch.full((n, ), FREE, dtype=torch.uint8)
    pred[:int(pred_rate * n)] = 1
    s = BaseDataElement(metainfo=dict(free_label=FREE))
    s.gt_occ, s.pred_occ = gt.view(1, 10, 10, 10), pred.view(1, 10, 10, 10)
    return s


def test_collapse_hook_warns_on_empty_prediction():
    runner = _fake_runner('collapse_bad')
    hook = OccupancyCollapseHook(warn_ratio=0.1)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, [_pred(0.0), _pred(0.01)])
    hook.after_val_epoch(runner)
    runner.logger.warning.assert_called_once()
    assert 'predicts almost nothing' in runner.logger.warning.call_args[0][0]
    assert hook.last_stats['pred_rate'] == pytest.approx(0.005)
    assert hook.last_stats['pred_max'] == pytest.approx(0.01)
    assert hook.last_stats['gt_rate'] == pytest.approx(0.2)
    assert runner.message_hub.get_scalar('val/collapse/ratio').current() == pytest.approx(0.025)


def test_collapse_hook_quiet_on_good_prediction():
    runner = _fake_runner('collapse_good')
    hook = OccupancyCollapseHook(warn_ratio=0.1)
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, [_pred(0.18), _pred(0.25)])
    hook.after_test_epoch(runner)
    runner.logger.warning.assert_not_called()
    assert runner.message_hub.get_scalar('test/collapse/pred_rate').current() == \
        pytest.approx(0.215)
    # free_label=-1 falls back to num_classes - 1 when the metainfo has no free_label
    s = _pred(0.1)
    s.set_metainfo(dict(free_label=None, num_classes=7))
    assert hook._resolve_free(s) == FREE
    with pytest.raises(ValueError):
        OccupancyCollapseHook(warn_ratio=0)


def test_visualization_hook_validates_arguments():
    with pytest.raises(ValueError):
        OccupancyVisualizationHook(interval=0)
    with pytest.raises(ValueError):
        OccupancyVisualizationHook(max_samples=-1)


# ----------------------------------------------------------------------------- tools
def test_plot_curves_from_scalars_json(tmp_path):
    plot_curves = _load_tool('tools/analysis_tools/plot_curves.py', 'plot_curves_tool')
    run = tmp_path / 'wd' / '20250101_000000' / 'vis_data'
    run.mkdir(parents=True)
    lines = [dict(lr=0.1, loss=3.0 - 0.1 * i, iter=i, step=i) for i in range(1, 11)]
    lines.insert(5, {'IoU@1': 20.0, 'IoU@6': 10.0, 'loss': 2.9, 'step': 5})
    lines.append({'IoU@1': 30.0, 'IoU@6': 15.0, 'loss': 2.5, 'step': 10})
    (run / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    data = plot_curves.load_scalars(plot_curves.find_scalar_files(str(tmp_path / 'wd')))
    assert sorted(data['val']['IoU@1']) == [5, 10] and len(data['train']['loss']) == 10
    assert data['val']['loss'] == {5: 2.9, 10: 2.5}  # val loss kept apart from train loss
    out = tmp_path / 'curves.png'
    plotted = plot_curves.main([str(tmp_path / 'wd'), '--keys', 'loss', 'IoU@*', '--out',
                                str(out), '--smooth', '3'])
    assert plotted == ['loss', 'IoU@1', 'IoU@6']
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 100
    with pytest.raises(SystemExit):
        plot_curves.main([str(tmp_path / 'wd'), '--keys', 'nope', '--out', str(out)])


def test_visualize_occupancy_gt_only_on_bundled_data(tmp_path):
    if not osp.exists(osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_val.pkl')):
        pytest.fail('data/tokyo_local is missing: run `bash tools/install.sh` first')
    tool = _load_tool('tools/misc/visualize_occupancy.py', 'visualize_occupancy_tool')
    out = tmp_path / 'vis'
    config = osp.join(ROOT, 'configs', 'test_local.py')
    written = tool.main([config, '--gt-only', '--out-dir', str(out), '--num-samples', '1',
                         '--tile-size', '64', '--render-width', '160'])
    names = sorted(osp.relpath(p, out) for p in written)
    bev = [n for n in names if n.endswith('_bev.png')]
    assert len(bev) == 1 and bev[0].startswith('000_')
    assert len([n for n in names if n.endswith('_gt.png')]) == 6  # one 3-D render per step
    img = cv2.imread(str(out / bev[0]))
    assert img is not None and img.shape[1] > 6 * 64
    with pytest.raises(SystemExit, match='not empty'):
        tool.main([config, '--gt-only', '--out-dir', str(out)])
    with pytest.raises(SystemExit):
        tool.main([config, '--out-dir', str(tmp_path / 'x')])  # no checkpoint, no --gt-only
