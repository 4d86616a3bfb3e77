"""num_modes and the multi-modal loss actually change training (gradients differ)."""
import numpy as np
import torch
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

import projects
from projects.registry import MODELS


def _batch():
    rng = np.random.default_rng(0)
    b = 4
    t = torch.arange(1, 65, dtype=torch.float32) * 0.1
    gt = torch.stack([5 * t, 0.05 * t ** 2, 0.01 * t], -1)[None].repeat(b, 1, 1)
    hist = torch.stack([torch.arange(-15, 1) * 0.5, torch.zeros(16)], -1).float()
    items = []
    for i in range(b):
        inputs = dict(agent_feats=torch.tensor(rng.normal(size=(4, 16, 10)), dtype=torch.float32),
                      agent_mask=torch.ones(4, 16, dtype=torch.bool),
                      map_feats=torch.tensor(rng.normal(size=(6, 10, 9)), dtype=torch.float32),
                      map_mask=torch.ones(6, 10, dtype=torch.bool),
                      ego_hist=torch.zeros(16, 6), hist_xy=hist)
        items.append(dict(inputs=inputs, data_samples=dict(
            gt_traj=gt[i], hist_xy=hist, gt_mask=torch.ones(64, dtype=torch.bool),
            sample_id=str(i))))
    return default_collate(items)


def _grad(num_modes, mm_loss):
    projects.register_all_modules()
    init_default_scope('projects')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='DrivingStudent', encoder=dict(type='VectorSceneEncoder', dim=32, num_layers=1,
                                            num_heads=2),
        dim=32, num_decoder_layers=1, num_heads=2, num_modes=num_modes, multimodal_loss=mm_loss,
        action_loss=None))
    torch.nn.init.normal_(model.traj_head.weight, std=0.01)
    losses = model(**_batch(), mode='loss')
    sum(losses.values()).backward()
    return model.encoder.agent_mlp[0].weight.grad.clone(), losses


def test_wta_and_nll_change_the_gradients():
    g1, _ = _grad(1, None)
    g_wta, l_wta = _grad(3, dict(type='WTALoss'))
    g_nll, l_nll = _grad(3, dict(type='MixtureNLLLoss'))
    assert not torch.allclose(g1, g_wta) and not torch.allclose(g1, g_nll)
    assert not torch.allclose(g_wta, g_nll)
    assert torch.isfinite(l_wta['loss_traj']) and torch.isfinite(l_nll['loss_traj'])


def test_loss_takes_inputs_and_data_samples_like_every_base_model():
    _, via_forward = _grad(1, None)
    projects.register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='DrivingStudent', encoder=dict(type='VectorSceneEncoder', dim=32, num_layers=1,
                                            num_heads=2),
        dim=32, num_decoder_layers=1, num_heads=2, num_modes=1, multimodal_loss=None,
        action_loss=None))
    torch.nn.init.normal_(model.traj_head.weight, std=0.01)
    batch = _batch()
    direct = model.loss(batch['inputs'], batch['data_samples'])
    assert set(direct) == set(via_forward)
    for key in direct:
        assert torch.allclose(direct[key], via_forward[key]), key
    features = model.forward_features(batch['inputs'])
    by_feat = model.loss_by_feat(features, batch['data_samples'])
    assert torch.allclose(by_feat['loss_traj'], direct['loss_traj'])
