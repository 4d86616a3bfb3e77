"""Draw the dataset windows a config produces: BEV and 3-D panels, one pair per window.

Usage:
    python tools/misc/browse_dataset.py CONFIG [--split train|val|test] [--output-dir DIR]
        [--max-windows N] [--no-3d] [--tile-size PX] [--overwrite] [--cfg-options k=v ...]

The dataset of ``<split>_dataloader`` is built exactly as training / testing builds it (its
pipeline, ``window_stride``, ``max_windows`` and ``--cfg-options`` included), so the images show
what the model is fed. ``--max-windows`` windows evenly spread over the dataset are drawn; every
window (``num_history`` + ``num_future`` frames) becomes

* ``<k>_<session>_f<first frame>_bev.png``: BEV class and height views, one column per frame
  (``t-3 .. t0`` observed, ``t+1 ..`` future), with the class legend;
* ``<k>_<session>_f<first frame>_3d.png``: a 3-D voxel render of every frame (unless
  ``--no-3d``).

One summary line per window is printed (session, frames, occupied fraction, ego displacement).
The output folder (default ``work_dirs/browse_dataset/<config name>/<split>``) must be empty
unless ``--overwrite`` is given; images are written atomically.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Draw the dataset windows of a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='which <split>_dataloader.dataset to draw (default: train)')
    parser.add_argument('--output-dir', help='folder of the PNG files (default: '
                        'work_dirs/browse_dataset/<config name>/<split>)')
    parser.add_argument('--max-windows', type=int, default=8,
                        help='number of windows, evenly spread over the dataset (default 8)')
    parser.add_argument('--no-3d', action='store_true', help='skip the 3-D panels')
    parser.add_argument('--tile-size', type=int, default=160, help='tile width in pixels')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow writing into a non-empty --output-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.dataset.window_stride=5')
    args = parser.parse_args(argv)
    if args.max_windows < 1:
        parser.error('--max-windows must be >= 1')
    if args.tile_size < 32:
        parser.error('--tile-size must be >= 32 pixels')
    return args


def build_dataset(cfg, split):
    """Build ``cfg.<split>_dataloader.dataset`` in the config's registry scope.

    Raises:
        KeyError: when the config has no ``<split>_dataloader.dataset``.
    """
    from mmengine.registry import init_default_scope

    from projects.registry import DATASETS
    key = f'{split}_dataloader'
    if key not in cfg or 'dataset' not in (cfg.get(key) or {}):
        raise KeyError(f'the config has no {key}.dataset')
    init_default_scope(cfg.get('default_scope', 'projects'))
    return DATASETS.build(cfg[key].dataset)


def window_indices(num_windows, max_windows):
    """``max_windows`` indices evenly spread over ``range(num_windows)`` (sorted, unique)."""
    n = min(max_windows, num_windows)
    return sorted(set(np.linspace(0, num_windows - 1, n).round().astype(int).tolist()))


def frame_labels(meta, num_frames):
    """Column headers ``t-3 .. t0 .. t+6`` (relative seconds when timestamps are known)."""
    hist = int(meta.get('num_history', num_frames))
    ts = meta.get('timestamps')
    labels = []
    for k in range(num_frames):
        rel = k - (hist - 1)
        text = 't0' if rel == 0 else f't{rel:+d}'
        if ts is not None and len(ts) == num_frames and hist >= 1:
            text += f' ({float(ts[k]) - float(ts[hist - 1]):+.1f}s)'
        labels.append(text)
    return labels


def palette_for(meta):
    """The dataset's palette, the PLATEAU palette for PLATEAU classes, else None (default)."""
    if meta.get('palette') is not None:
        return meta['palette']
    from projects.aerialworld.datasets.classes import PLATEAU_CLASSES, PLATEAU_PALETTE
    if tuple(meta.get('classes') or ()) == PLATEAU_CLASSES:
        return PLATEAU_PALETTE
    return None


def draw_window(data, dataset_meta, draw_3d=True, tile_size=160):
    """Render one packed window (``{'inputs': {'occupancy': (T, X, Y, Z)}, ...}``).

    Args:
        data (dict): a dataset item after the pipeline (``PackOccupancyInputs``).
        dataset_meta (dict): the dataset's metainfo (classes, free label, grid).
        draw_3d (bool): also render the 3-D panel.
        tile_size (int): tile width in pixels.

    Returns:
        tuple[dict[str, np.ndarray], dict]: ``{'bev': RGB uint8, '3d': RGB uint8}`` and the
        window's metainfo.

    Raises:
        KeyError: when the item has no ``inputs['occupancy']`` or no free label is known.
    """
    from projects.common.visualization import compose_panel
    inputs = data.get('inputs') or {}
    if 'occupancy' not in inputs:
        raise KeyError(f"the pipeline's output has no inputs['occupancy'] (inputs: "
                       f'{sorted(inputs)}); is the config an occupancy config?')
    occ = np.asarray(inputs['occupancy'])
    meta = dict(data['data_samples'].metainfo) if 'data_samples' in data else {}
    free = dataset_meta.get('free_label', meta.get('free_label'))
    if free is None:
        raise KeyError('no free_label in the dataset metainfo or the window metainfo')
    common = dict(palette=palette_for(dataset_meta), class_names=dataset_meta.get('classes'),
                  voxel_size=dataset_meta.get('voxel_size'),
                  point_cloud_range=dataset_meta.get('point_cloud_range'),
                  step_labels=frame_labels(meta, occ.shape[0]), tile_size=tile_size)
    title = (f"{meta.get('session', 'window')}  frames {list(meta.get('frame_indices', []))}"
             f"  ({meta.get('num_history', '?')} observed + {meta.get('num_future', '?')} "
             'future)')
    panels = {'bev': compose_panel([('window', occ)], int(free), views=('class', 'height'),
                                   title=title, **common)}
    if draw_3d:
        panels['3d'] = compose_panel([('window', occ)], int(free), views=('3d', ),
                                     title=title, legend=False, **common)
    return panels, meta


def summary_line(k, index, data, meta, free_label):
    """One printed line per window: session, frames, occupied fraction, ego displacement."""
    occ = np.asarray(data['inputs']['occupancy'])
    occupied = float((occ != free_label).mean())
    text = (f'[{k}] window {index}: session {meta.get("session", "?")}, frames '
            f'{list(meta.get("frame_indices", []))}, occupied {100 * occupied:.2f} %')
    poses = data['inputs'].get('poses')
    if poses is not None:
        # (T, 13) or (T, 7) session-frame poses: [x, y, z, qw, qx, qy, qz, ...] in metres
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim == 2 and poses.shape[1] >= 3:
            shift = np.linalg.norm(poses[-1, :3] - poses[0, :3])
            text += f', ego moves {shift:.1f} m over the window'
    return text


def main(argv=None):
    """Draw the windows; return the list of written files."""
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'browse_dataset: error: config {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    out_dir = args.output_dir or osp.join(
        'work_dirs', 'browse_dataset', osp.splitext(osp.basename(args.config))[0], args.split)
    if osp.isdir(out_dir) and os.listdir(out_dir) and not args.overwrite:
        sys.exit(f'browse_dataset: error: {out_dir} is not empty; pass --overwrite to write '
                 'into it')
    import projects  # noqa: F401  (registers the datasets and transforms)
    from projects.common.utils.io import atomic_write
    from projects.common.visualization.occupancy_visualizer import write_png
    try:
        dataset = build_dataset(cfg, args.split)
    except KeyError as err:
        sys.exit(f'browse_dataset: error: {args.config}: {err.args[0]}')
    if len(dataset) == 0:
        sys.exit(f'browse_dataset: error: the {args.split} dataset of {args.config} is empty')
    dataset_meta = dict(dataset.metainfo)
    indices = window_indices(len(dataset), args.max_windows)
    print(f'browse_dataset: {len(dataset)} {args.split} windows in {args.config}; drawing '
          f'{len(indices)} into {out_dir}')
    os.makedirs(out_dir, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    written = []
    for k, index in enumerate(indices):
        data = dataset[index]
        panels, meta = draw_window(data, dataset_meta, draw_3d=not args.no_3d,
                                   tile_size=args.tile_size)
        free = dataset_meta.get('free_label', meta.get('free_label'))
        print(summary_line(k, index, data, meta, free))
        frames = meta.get('frame_indices')
        stem = f'{k:03d}_{meta.get("session", "window")}'
        if frames is not None and len(frames):
            stem += f'_f{int(frames[0]):06d}'
        for kind, image in panels.items():
            path = osp.join(out_dir, f'{stem}_{kind}.png')
            atomic_write(path, lambda tmp, image=image: write_png(tmp, image))
            os.chmod(path, 0o666 & ~umask)  # mkstemp creates 0600
            written.append(path)
    print(f'browse_dataset: wrote {len(written)} images to {out_dir}')
    return written


if __name__ == '__main__':
    main()
