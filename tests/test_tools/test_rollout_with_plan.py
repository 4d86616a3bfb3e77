"""tools/misc/rollout_with_plan.py on the bundled Tokyo sessions with a tiny 6-DoF model.

The checkpoint is a freshly built tiny model whose token head is zeroed, so its forecast is
exactly the motion-compensated copy prior: the test can then see that the plan drives it.
"""
import json
import math
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))

import rollout_with_plan  # noqa: E402

DATA = osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_val.pkl')
SESSION = 'drone_random_walk_000'

CONFIG = f"""
_base_ = [{osp.join(ROOT, 'configs', 'test_local.py')!r}]
model = dict(
    pose_mode='6dof', train_stage='world',
    head=dict(losses=[dict(type='TokenCrossEntropyLoss', target='token')],
              pose_losses=[dict(type='TranslationLoss', target='pose'),
                           dict(type='GeodesicRotationLoss', target='rot'),
                           dict(type='VelocityLoss', target='vel')]),
    tokenizer=dict(base_channels=8, num_codes=32),
    # the untrained learned-flow head (zero-initialised: agents stay), not test_local's tracked
    # agents, so the forecast is the static world turned by the plan (checked below)
    agent_motion=dict(flow_mode='per_step', velocity_prior=False, continue_gate=False,
                      flow_residual=True),
    # pose_envelope (test_local's planar pose branch) is planar-only
    transformer=dict(d_model=16, num_blocks=1, num_heads=2, pose_hidden=16, copy_prior=30.0,
                     pose_envelope=None))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(sessions=[{SESSION!r}], window_stride=1))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` first')
    from mmengine.registry import init_default_scope

    from projects.registry import MODELS
    tmp = tmp_path_factory.mktemp('rollout')
    cfg_path = str(tmp / 'tiny_6dof.py')
    with open(cfg_path, 'w') as f:
        f.write(CONFIG)
    init_default_scope('projects')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    state = model.state_dict()
    state['transformer.head.weight'].zero_()
    state['transformer.head.bias'].zero_()
    ckpt = str(tmp / 'tiny.pth')
    torch.save(dict(state_dict=state, meta=dict(train_stage='world', iter=10)), ckpt)
    return cfg_path, ckpt, tmp


def _load_frames(folder, session):
    occ_dir = osp.join(folder, session, 'occupancy')
    names = sorted(n for n in __import__('os').listdir(occ_dir) if n.endswith('.npz'))
    return names, [np.load(osp.join(occ_dir, n))['occupancy'] for n in names]


def test_default_plan_writes_session_format(setup):
    cfg, ckpt, tmp = setup
    out = str(tmp / 'gt_plan')
    args = [cfg, ckpt, '--out-dir', out, '--session', SESSION, '--start-frame', '2']
    written = rollout_with_plan.main(args)
    names, frames = _load_frames(out, SESSION)
    # history = frames 2..5, predicted = 6..11 with the seed's file naming
    assert names == [f'{i:06d}_occupancy.npz' for i in range(6, 12)]
    assert all(f.dtype == np.uint8 and f.shape == (50, 50, 30) for f in frames)
    pose = json.load(open(osp.join(out, SESSION, 'poses', '000006.json')))
    gt_pose = json.load(open(osp.join(ROOT, 'data', 'tokyo_local', SESSION, 'poses',
                                      '000006.json')))
    assert np.allclose(pose['pose_13d'], gt_pose['pose_13d'], atol=1e-4)
    info = json.load(open(osp.join(out, SESSION, 'rollout_info.json')))
    assert info['predicted_frames'] == list(range(6, 12)) and info['pose_mode'] == '6dof'
    assert len(written) == 13
    # refuses to overwrite, then overwrites with --overwrite
    with pytest.raises(SystemExit, match='--overwrite'):
        rollout_with_plan.main(args)
    rollout_with_plan.main(args + ['--overwrite'])
    assert not [n for n in __import__('os').listdir(osp.join(out, SESSION, 'occupancy'))
                if n.startswith('.')]  # no temporary files left


def test_plan_changes_prediction(setup):
    cfg, ckpt, tmp = setup
    gt_dir = str(tmp / 'gt')
    rollout_with_plan.main([cfg, ckpt, '--out-dir', gt_dir, '--session', SESSION])
    # a pure yaw plan: hover at the last history pose, turning 180 degrees per step
    hist_pose = json.load(open(osp.join(ROOT, 'data', 'tokyo_local', SESSION, 'poses',
                                        '000003.json')))['pose_13d']
    from scipy.spatial.transform import Rotation
    q0 = Rotation.from_quat([hist_pose[4], hist_pose[5], hist_pose[6], hist_pose[3]])
    plan = []
    for f in range(6):
        xyzw = (Rotation.from_euler('z', math.pi * (f + 1)) * q0).as_quat()
        plan.append(hist_pose[:3] + [xyzw[3], xyzw[0], xyzw[1], xyzw[2]] + [0.0] * 6)
    plan_path = str(tmp / 'yaw_plan.json')
    json.dump(plan, open(plan_path, 'w'))
    yaw_dir = str(tmp / 'yaw')
    rollout_with_plan.main([cfg, ckpt, '--out-dir', yaw_dir, '--session', SESSION,
                            '--plan', plan_path])
    _, gt_frames = _load_frames(gt_dir, SESSION)
    _, yaw_frames = _load_frames(yaw_dir, SESSION)
    assert not np.array_equal(gt_frames[0], yaw_frames[0])
    # 180 + 180 degrees: the copy prior turns the map back, as the plan says
    assert np.array_equal(yaw_frames[0], yaw_frames[2])
    assert not np.array_equal(yaw_frames[0], yaw_frames[1])


def test_bad_inputs_are_clear_errors(setup):
    cfg, ckpt, tmp = setup
    bad = str(tmp / 'bad_plan.json')
    json.dump([[0.0] * 12], open(bad, 'w'))
    with pytest.raises(SystemExit, match='13'):
        rollout_with_plan.main([cfg, ckpt, '--out-dir', str(tmp / 'x'), '--plan', bad])
    json.dump([[0.0] * 13], open(bad, 'w'))
    with pytest.raises(SystemExit, match='quaternion'):
        rollout_with_plan.main([cfg, ckpt, '--out-dir', str(tmp / 'x'), '--plan', bad])
    with pytest.raises(SystemExit, match='no window'):
        rollout_with_plan.main([cfg, ckpt, '--out-dir', str(tmp / 'x'), '--session', 'nope'])
    with pytest.raises(SystemExit, match='does not exist'):
        rollout_with_plan.main([cfg, str(tmp / 'missing.pth'), '--out-dir', str(tmp / 'x')])
