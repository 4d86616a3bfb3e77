"""Action-conditioned AerialWorld rollout: predict the future occupancy along a planned path.

Usage:
    python tools/misc/rollout_with_plan.py CONFIG CHECKPOINT --out-dir DIR
        [--plan plan.json] [--index I | --session NAME [--start-frame K]]
        [--split val|test|train] [--stage auto|world|joint] [--device cpu|cuda]
        [--overwrite] [--cfg-options k=v ...]

Builds the model and ``<split>_dataloader.dataset`` (default ``val``) of CONFIG, loads
CHECKPOINT, takes one window (``--index``, or the window of ``--session`` starting at frame
``--start-frame``, default its first window), reads the plan and calls
:meth:`AerialWorld.predict_with_plan`: the world model rolls out from the window's
``num_history`` history frames with the ego motion of the plan instead of its own prediction.

Plan file (JSON): a list of ``F`` 13-D poses ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy,
wz]`` in the session's world frame (metres, scalar-first unit quaternion body -> world, m/s
world frame, rad/s body frame); each entry may also be a pose dict of the session format
(``{"pose_13d": [...]}`` or ``position`` / ``orientation`` / ``velocity``), and the list may
sit under a ``"poses"`` key. Without ``--plan`` the window's ground-truth future poses are
used (then the prediction is comparable with the true future).

Output, in the session format (``docs/aerialworld_data_and_model_contract.md``)::

    DIR/<session>/occupancy/<frame:06d>_occupancy.npz   key 'occupancy', (X, Y, Z) uint8
    DIR/<session>/poses/<frame:06d>.json                the planned pose of that frame
    DIR/<session>/rollout_info.json                     config, checkpoint, window, plan source

with ``frame`` continuing the window's history frame numbers. Every file is written to a
temporary file in the same folder and renamed (atomic); the tool refuses to replace existing
files unless ``--overwrite`` is given (checked before anything is written).
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

import projects  # noqa: E402,F401  (registers every module)
from projects.aerialworld.datasets.session_io import (frame_paths, pose_from_json,  # noqa: E402
                                                      pose_json)
from projects.common.utils.io import save_json_atomic, save_npz_atomic  # noqa: E402


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description='Predict future occupancy along a planned 13-D pose sequence')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint of a world-stage AerialWorld model')
    parser.add_argument('--plan', help='JSON list of 13-D poses (default: the ground-truth '
                        'future poses of the window)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--index', type=int, help='window index in the dataset (default 0)')
    parser.add_argument('--session', help='take a window of this session')
    parser.add_argument('--start-frame', type=int,
                        help='with --session: first frame of the window (default: the '
                        "session's first window)")
    parser.add_argument('--split', choices=['val', 'test', 'train'], default='val',
                        help='which <split>_dataloader.dataset of the config (default val)')
    parser.add_argument('--stage', choices=['auto', 'world', 'joint'], default='auto',
                        help="model stage: 'auto' = the stage the checkpoint was trained in")
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. val_dataloader.dataset.data_root=...')
    args = parser.parse_args(argv)
    if args.index is not None and args.session is not None:
        parser.error('give either --index or --session, not both')
    if args.start_frame is not None and args.session is None:
        parser.error('--start-frame needs --session')
    return args


def load_plan(path):
    """Read a plan file.

    Args:
        path (str): JSON file (see the module docstring).

    Returns:
        np.ndarray: ``(F, 13)`` float32 poses.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: On malformed content (the message names the file and entry).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'rollout_with_plan: plan file {path!r} does not exist')
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not valid JSON ({err})') from err
    if isinstance(data, dict) and 'poses' in data:
        data = data['poses']
    if not isinstance(data, list) or not data:
        raise ValueError(f'{path}: expected a non-empty JSON list of 13-D poses')
    return np.asarray([pose_from_json(e, f'{path}[{i}]') for i, e in enumerate(data)],
                      dtype=np.float32)


def _select_window(dataset, args):
    """Index of the requested window."""
    n = len(dataset)
    if n == 0:
        sys.exit(f'rollout_with_plan: the {args.split} dataset of {args.config} has no window')
    if args.session is None:
        idx = 0 if args.index is None else args.index
        if not 0 <= idx < n:
            sys.exit(f'rollout_with_plan: --index {idx} out of range [0, {n})')
        return idx
    found = []
    for i in range(n):
        info = dataset.get_data_info(i)
        if info['session'] == args.session:
            found.append((int(info['frame_indices'][0]), i))
    if not found:
        sys.exit(f'rollout_with_plan: session {args.session!r} has no window in the '
                 f'{args.split} dataset of {args.config}')
    if args.start_frame is None:
        return min(found)[1]
    for start, i in found:
        if start == args.start_frame:
            return i
    sys.exit(f'rollout_with_plan: no window of {args.session!r} starts at frame '
             f'{args.start_frame} (window starts: {sorted(s for s, _ in found)})')


def _choose_stage(model, cfg, checkpoint, requested):
    """Put the model into the stage of the checkpoint (or the requested one)."""
    if requested != 'auto':
        model.set_stage(requested)
        return requested
    from projects.common.engine import checkpoint_stage
    stage = checkpoint_stage(cfg, checkpoint)
    if stage is not None and stage != model.train_stage:
        model.set_stage(stage)
    if model.train_stage == 'tokenizer':
        sys.exit('rollout_with_plan: the checkpoint is a tokenizer-stage checkpoint (no '
                 'trained world model); use a world-stage checkpoint or force --stage world')
    return model.train_stage


def main(argv=None):
    """Run the planned rollout; return the list of written files."""
    args = parse_args(argv)
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

    from projects.registry import DATASETS, MODELS

    if not osp.isfile(args.checkpoint):
        sys.exit(f'rollout_with_plan: checkpoint {args.checkpoint!r} does not exist')
    plan = None
    if args.plan:
        try:
            plan = load_plan(args.plan)
        except (FileNotFoundError, ValueError) as err:
            sys.exit(f'rollout_with_plan: {err}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    key = f'{args.split}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        sys.exit(f'rollout_with_plan: {args.config} has no {key}.dataset')
    dataset = DATASETS.build(cfg[key]['dataset'])
    idx = _select_window(dataset, args)

    model = MODELS.build(cfg.model)
    if not hasattr(model, 'predict_with_plan'):
        sys.exit(f'rollout_with_plan: model type {type(model).__name__} has no '
                 'predict_with_plan (an AerialWorld model is needed)')
    checkpoint = _load_checkpoint(args.checkpoint, map_location='cpu')
    _load_checkpoint_to_model(model, checkpoint, strict=True)
    stage = _choose_stage(model, cfg, checkpoint, args.stage)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model.to(device).eval()

    data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
    inputs, samples = data['inputs'], data['data_samples']
    meta = dict(samples[0].metainfo)
    hist = model.num_history
    frames = [int(f) for f in meta['frame_indices']]
    stamps = [float(s) for s in meta.get('timestamps') or range(len(frames))]
    plan_source = args.plan
    if plan is None:
        plan = inputs['poses'][0, hist:hist + model.num_future].cpu().numpy()
        plan_source = 'ground-truth future poses of the window'
        if len(plan) == 0:
            sys.exit('rollout_with_plan: the window has no future frames; pass --plan')
    fut = len(plan)
    step = frames[1] - frames[0] if len(frames) > 1 else 1
    dt = stamps[1] - stamps[0] if len(stamps) > 1 else 1.0
    session = str(meta.get('session', 'session'))
    out_frames = [frames[hist - 1] + (f + 1) * step for f in range(fut)]
    out_stamps = [stamps[hist - 1] + (f + 1) * dt for f in range(fut)]
    root = osp.join(args.out_dir, session)
    targets = [osp.join(root, frame_paths(fr)['occ']) for fr in out_frames]
    pose_targets = [osp.join(root, frame_paths(fr)['pose']) for fr in out_frames]
    info_path = osp.join(root, 'rollout_info.json')
    existing = [p for p in targets + pose_targets + [info_path] if osp.exists(p)]
    if existing and not args.overwrite:
        sys.exit(f'rollout_with_plan: {len(existing)} output files exist (e.g. {existing[0]}); '
                 'pass --overwrite to replace them')

    with torch.no_grad():
        result = model.predict_with_plan(inputs, torch.as_tensor(plan)[None].to(device),
                                         samples)[0]
    pred = result.pred_occ.numpy().astype(np.uint8)
    written = []
    for f in range(fut):
        occ = np.ascontiguousarray(pred[f])
        save_npz_atomic(targets[f], occupancy=occ)
        save_json_atomic(pose_targets[f], pose_json(plan[f], out_stamps[f]))
        written += [targets[f], pose_targets[f]]
    info = dict(config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint),
                stage=stage, pose_mode=getattr(model, 'pose_mode', None), split=args.split,
                window_index=idx, session=session, history_frames=frames[:hist],
                predicted_frames=out_frames, plan=plan_source,
                planned_poses=np.asarray(plan, dtype=float).tolist())
    save_json_atomic(info_path, info, indent=1)
    written.append(info_path)
    print(f'rollout_with_plan: window {idx} ({session}, history frames {frames[:hist]}), '
          f'{fut} planned steps ({plan_source}), stage {stage}: wrote {len(written)} files '
          f'to {root}')
    return written


if __name__ == '__main__':
    main()
