"""AerialWorld model parts: forecast head loss list, pose codec, OccDataSample, init_cfg."""
import math

import pytest
import torch
import torch.nn.functional as F

from aerialworld_model_helpers import TINY_TOKENIZER, head_cfg, synthetic_batch, tiny_model_cfg
from projects.aerialworld.models import OccForecastHead, PoseCodec
from projects.aerialworld.structures import OccDataSample
from projects.common.structures import quat_from_yaw
from projects.registry import MODELS


def _head(losses, pose_mode='planar4'):
    return OccForecastHead(losses=losses, num_classes=4, free_label=3, pose_mode=pose_mode)


def test_head_loss_list_names_values_and_free_label():
    head = _head([
        dict(type='TokenCrossEntropyLoss', target='token', loss_weight=2.0),
        dict(type='OccupancyFocalLoss', target='occupancy', name='focal', alpha=0.5,
             gamma=0.0),
        dict(type='TokenCrossEntropyLoss', target='recon', name='ce', loss_weight=0.5),
        dict(type='mmdet.L1Loss', target='pose', loss_weight=3.0),
    ])
    assert head.loss_modules['loss_focal'].free_label == 3  # filled in from the model
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, 2, generator=g)
    target = torch.randint(0, 4, (2, 3, 3, 2), generator=g).to(torch.uint8)
    rec = head.loss_reconstruction(logits, target, torch.tensor(0.7), torch.tensor([1, 1, 5]),
                                   num_codes=8)
    ce = F.cross_entropy(logits, target.long())
    # focal with gamma 0 and alpha 0.5 is half the cross-entropy
    assert torch.allclose(rec['loss_recon_focal'], 0.5 * ce, atol=1e-6)
    assert torch.allclose(rec['loss_recon_ce'], 0.5 * ce, atol=1e-6)
    assert float(rec['loss_vq']) == pytest.approx(0.7)
    assert float(rec['code_usage']) == pytest.approx(2 / 8)
    assert 'loss_pred_focal' not in rec and 'loss_recon_dice' not in rec
    pred = head.occupancy_losses(logits, target, 'pred')
    assert set(k for k in pred if k.startswith('loss')) == {'loss_pred_focal'}
    tok_logits = torch.randn(1, 3, 8, 2, 2, generator=g)
    tokens = torch.randint(0, 8, (1, 3, 2, 2), generator=g)
    tok = head.token_losses(tok_logits, tokens)
    ref = F.cross_entropy(tok_logits[:, :-1].reshape(2, 8, 2, 2), tokens[:, 1:].reshape(2, 2, 2))
    assert torch.allclose(tok['loss_token'], 2.0 * ref)
    pose = head.pose_losses(torch.ones(1, 2, 4), torch.zeros(1, 2, 4))
    assert float(pose['loss_pose']) == pytest.approx(3.0)
    assert float(pose['pose_l2']) == pytest.approx(math.sqrt(3))


def test_head_config_errors():
    with pytest.raises(ValueError, match='target must be one of'):
        _head([dict(type='OccupancyDiceLoss', target='voxels', name='dice')])
    with pytest.raises(ValueError, match="need a 'name'"):
        _head([dict(type='OccupancyDiceLoss', target='occupancy')])
    with pytest.raises(ValueError, match='configured twice'):
        _head([dict(type='OccupancyDiceLoss', target='occupancy', name='dice'),
               dict(type='OccupancyDiceLoss', target='pred', name='dice')])
    with pytest.raises(ValueError, match='loss_vel'):
        _head([dict(type='VelocityLoss', target='vel')])
    six = _head([dict(type='VelocityLoss', target='vel'),
                 dict(type='GeodesicRotationLoss', target='rot')], pose_mode='6dof')
    out = six.pose_losses(torch.randn(1, 2, 13), torch.randn(1, 2, 13))
    assert {'loss_vel', 'loss_rot', 'rot_err_deg', 'pose_l2'} <= set(out)
    with pytest.raises(ValueError, match=r"head.pose_losses\[0\].*must target 'pose'"):
        OccForecastHead(losses=[], pose_losses=[dict(type='OccupancyDiceLoss', target='pred',
                                                     name='dice')],
                        num_classes=4, free_label=3)
    with pytest.raises(ValueError, match=r'head.pose_losses\[0\].*configured twice'):
        OccForecastHead(losses=[dict(type='mmdet.L1Loss', target='pose')],
                        pose_losses=[dict(type='mmdet.L1Loss', target='pose')],
                        num_classes=4, free_label=3)


def test_head_pose_losses_list_joins_the_loss_list():
    """``pose_losses`` (what a 6-DoF config replaces) adds to ``losses``."""
    head = OccForecastHead(
        losses=[dict(type='TokenCrossEntropyLoss', target='token')],
        pose_losses=[dict(type='TranslationLoss', target='pose', loss_type='l1'),
                     dict(type='GeodesicRotationLoss', target='rot', loss_weight=2.0)],
        num_classes=4, free_label=3, pose_mode='6dof')
    assert set(head.loss_modules) == {'loss_token', 'loss_pose', 'loss_rot'}
    pred = torch.zeros(1, 1, 13)
    pred[..., 3] = 1.0  # identity rotation
    gt = pred.clone()
    gt[..., 0] = 2.0  # 2 m off in x
    gt[..., 3:7] = torch.tensor([math.cos(0.25), 0.0, 0.0, math.sin(0.25)])  # 0.5 rad yaw
    out = head.pose_losses(pred, gt)
    assert float(out['loss_rot']) == pytest.approx(2.0 * 0.5, abs=1e-5)
    assert float(out['loss_pose']) > 0


def _poses(n=5):
    """A flight: 1 m steps forward, turning 0.1 rad per step, climbing 0.5 m per step."""
    poses = torch.zeros(1, n, 13)
    yaw = 0.1 * torch.arange(n, dtype=torch.float32)
    for i in range(1, n):
        poses[0, i, :2] = poses[0, i - 1, :2] + torch.stack(
            [torch.cos(yaw[i - 1]), torch.sin(yaw[i - 1])])
    poses[0, :, 2] = 0.5 * torch.arange(n)
    poses[0, :, 3:7] = quat_from_yaw(yaw)
    return poses


@pytest.mark.parametrize('mode', ['planar4', '6dof'])
def test_pose_codec_round_trip(mode):
    codec = PoseCodec(mode)
    poses = _poses()
    motion = codec.step_motion(poses)
    assert motion.shape == (1, 4, codec.dims)
    rel = codec.accumulate(motion)  # every pose relative to the first
    # the first pose is the origin with yaw 0: relative = absolute
    assert torch.allclose(rel[0, :, :3], poses[0, 1:, :3], atol=1e-5)
    assert float(rel[0, -1, 3]) == pytest.approx(0.4, abs=1e-5)
    frame = codec.frame_motion(poses)
    assert frame.shape == (1, 5, codec.dims) and torch.allclose(frame[:, 1:], motion)
    if mode == '6dof':
        back = codec.compose(motion, poses[:, 0])
        assert torch.allclose(back[..., :7], poses[:, 1:, :7], atol=1e-5)
        assert torch.allclose(codec.no_motion(2, motion)[..., 3], torch.ones(2, 1))
    else:
        with pytest.raises(ValueError, match='6dof'):
            codec.compose(motion, poses[:, 0])
        assert torch.equal(codec.no_motion(2, motion), torch.zeros(2, 1, 4))
    with pytest.raises(ValueError, match='pose_mode'):
        PoseCodec('se3')
    with pytest.raises(ValueError, match='zero quaternion'):
        codec.check_plan(torch.zeros(1, 2, 13), poses, 'test')


def test_occ_data_sample_typed_fields():
    sample = OccDataSample(metainfo=dict(session='s', num_future=2))
    sample.gt_occ = torch.zeros(2, 3, 3, 2, dtype=torch.uint8)
    sample.pred_ego_motion = torch.zeros(2, 4)
    assert sample.session == 's' and set(sample.keys()) == {'gt_occ', 'pred_ego_motion'}
    with pytest.raises(TypeError, match='pred_occ must be torch.uint8'):
        sample.pred_occ = torch.zeros(2, 3, 3, 2)
    with pytest.raises(ValueError, match='4 dimensions'):
        sample.baseline_occ = torch.zeros(3, 3, 2, dtype=torch.uint8)
    with pytest.raises(TypeError, match='torch.Tensor'):
        sample.gt_ego_motion = [[0.0] * 4]
    assert set(sample.keys()) == {'gt_occ', 'pred_ego_motion'}  # rejected fields not kept
    copy = OccDataSample.from_element(sample)
    assert torch.equal(copy.gt_occ, sample.gt_occ) and copy.metainfo == sample.metainfo
    del copy.gt_occ
    assert 'gt_occ' not in copy


def test_predict_returns_occ_data_samples():
    model = MODELS.build(tiny_model_cfg(train_stage='world')).to('cpu').eval()  # nn.Module._apply
    out = model.predict(synthetic_batch(batch=1, frames=4))
    assert isinstance(out[0], OccDataSample) and out[0].metainfo['pose_mode'] == 'planar4'


def test_pretrained_init_cfg_strictness(tmp_path):
    torch.manual_seed(0)
    stage1 = MODELS.build(tiny_model_cfg(head=head_cfg()))
    path = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=stage1.state_dict()), path)

    def build(prefix, **tok):
        init = dict(type='Pretrained', checkpoint=path, prefix=prefix)
        return MODELS.build(tiny_model_cfg(train_stage='world', tokenizer=dict(
            TINY_TOKENIZER, init_cfg=init, **tok)))

    model = build('tokenizer.')
    model.init_weights()
    for k, v in stage1.tokenizer.state_dict().items():
        assert torch.equal(model.tokenizer.state_dict()[k], v), k
    with pytest.raises(RuntimeError, match=r'stage1\.pth.*shape mismatches'):
        build('tokenizer.', code_dim=8).init_weights()
    with pytest.raises(RuntimeError, match=r'stage1\.pth.*unexpected keys.*z_stem'):
        # a checkpoint with a z stem does not fit a tokenizer without one
        sd = {f'tokenizer.{k}': v for k, v in stage1.tokenizer.state_dict().items()}
        sd['tokenizer.z_stem.weight'] = torch.zeros(1)
        torch.save(dict(state_dict=sd), path)
        build('tokenizer.').init_weights()
    with pytest.raises(RuntimeError, match=r"prefix='transformer_x\.'"):
        build('transformer_x.').init_weights()
    torch.save(dict(state_dict={k: v for k, v in stage1.state_dict().items()
                                if 'class_embeds' not in k}), path)
    with pytest.raises(RuntimeError, match=r'missing keys.*class_embeds'):
        build('tokenizer.').init_weights()


@pytest.mark.parametrize('checkpoint_losses', [True, False])
def test_checkpointed_occupancy_losses_give_the_same_values_and_gradients(checkpoint_losses):
    losses = [dict(type='OccupancyFocalLoss', target='occupancy', name='focal'),
              dict(type='OccupancyDiceLoss', target='occupancy', name='dice'),
              dict(type='MeanMatchingLoss', target='occupancy', name='mm')]
    ref_head = OccForecastHead(losses=losses, num_classes=4, free_label=3,
                               checkpoint_losses=False)
    head = OccForecastHead(losses=losses, num_classes=4, free_label=3,
                           checkpoint_losses=checkpoint_losses)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 5, 3, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 5, 3), generator=g).to(torch.uint8)
    grads = []
    for h in (ref_head, head):
        out = h.occupancy_losses(logits, target, 'recon')
        total = sum(v for k, v in out.items() if k.startswith('loss'))
        grads.append((total.detach(), torch.autograd.grad(total, logits)[0]))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
