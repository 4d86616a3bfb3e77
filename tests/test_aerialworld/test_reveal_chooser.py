"""RevealChooser: the keep-or-decode choice of newly revealed space that sees both fills."""
import math

import pytest
import torch

from aerialworld_model_helpers import TINY_CLASSES, synthetic_batch, tiny_model_cfg
from test_agent_motion import _model as agent_model
from projects.aerialworld.models.reveal_chooser import (FEATURES, RevealChooser,
                                                        reveal_choice_targets)
from projects.registry import MODELS

RANGE = [-5.0, -5.0, 0.0, 5.0, 5.0, 6.0]
FREE = TINY_CLASSES - 1


def _columns():
    """A 1 x 2 x 2 x 6 last frame and a 2-step fill: ground everywhere; step 1 of the fill
    adds a 3-voxel building (z 1..3) on column (0, 0); step 2 loses the ground at (1, 1)."""
    keep = torch.full((1, 2, 2, 6), FREE, dtype=torch.uint8)
    keep[..., 0] = 0
    fill = keep[:, None].repeat(1, 2, 1, 1, 1)
    fill[0, 0, 0, 0, 1:4] = 1
    fill[0, 1, 1, 1, 0] = FREE
    return keep, fill


def test_features_by_hand():
    keep, fill = _columns()
    prior = torch.full((1, 2, 2, 2), 0.5)
    feats = RevealChooser.features(keep, fill, prior, FREE)
    assert feats.shape == (1, 2, len(FEATURES), 2, 2)
    col = dict(zip(FEATURES, feats[0, 0, :, 0, 0].tolist()))
    assert col['prior_logit'] == 0.5 and col['step'] == 0.5
    assert col['keep_count'] == pytest.approx(1 / 6) and col['fill_count'] == pytest.approx(4 / 6)
    assert col['differ_count'] == pytest.approx(3 / 6)
    assert col['keep_low'] == 0 and col['fill_low'] == 0
    assert col['keep_high'] == 0 and col['fill_high'] == pytest.approx(3 / 6)
    empty = dict(zip(FEATURES, feats[0, 1, :, 1, 1].tolist()))
    assert empty['fill_count'] == 0 and empty['fill_low'] == -1 and empty['fill_high'] == -1
    assert empty['step'] == 1.0
    assert RevealChooser.features(keep, fill, None, FREE)[:, :, 0].abs().sum() == 0


def test_untrained_chooser_is_the_prior_and_learns_the_cheaper_fill():
    torch.manual_seed(0)
    keep, fill = _columns()
    truth = fill.clone()
    truth[0, 0, 0, 0, 1:4] = FREE  # no building: keeping (0, 0) is right at step 1
    lut = torch.zeros(256, dtype=torch.bool)
    revealed = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    target, weight = reveal_choice_targets(keep, fill, revealed, truth, lut, FREE)
    # IoU cost: missed voxels + 0.6 x false ones
    assert target[0, 0, 0, 0] == 1 and weight[0, 0, 0, 0] == pytest.approx(1.8)  # 3 false
    assert target[0, 1, 1, 1] == 0 and weight[0, 1, 1, 1] == pytest.approx(0.6)  # truth lost it
    assert weight.sum() == pytest.approx(2.4)  # the other columns tie
    ground = keep[:, None].repeat(1, 2, 1, 1, 1)
    missed, _ = reveal_choice_targets(keep, torch.full_like(ground, FREE), revealed, ground,
                                      lut, FREE)
    assert missed.all()  # an empty fill misses the ground: keep
    chooser = RevealChooser(channels=8)
    prior = torch.full((1, 2, 2, 2), -0.25)
    feats = RevealChooser.features(keep, fill, prior, FREE)
    assert torch.equal(chooser(feats), prior)
    losses = chooser.loss(chooser(feats), target, weight)
    expected = (1.8 * math.log1p(math.exp(0.25)) + 0.6 * math.log1p(math.exp(-0.25))) / 2.4
    assert float(losses['loss_reveal_choice']) == pytest.approx(expected, rel=1e-5)
    opt = torch.optim.Adam(chooser.parameters(), lr=1e-2)
    first = float(losses['loss_reveal_choice'])
    for _ in range(100):
        losses = chooser.loss(chooser(feats), target, weight)
        opt.zero_grad()
        losses['loss_reveal_choice'].backward()
        opt.step()
    assert float(losses['loss_reveal_choice']) < first / 4
    assert float(losses['reveal_choice_acc']) == 1.0
    with pytest.raises(ValueError, match='interval'):
        RevealChooser(interval=0)


def _model(**chooser):
    """The tiny agent-motion model of test_agent_motion.py with a chooser."""
    return agent_model(reveal_chooser=dict(channels=8, **chooser))


def test_model_trains_the_chooser_on_its_rollout_and_predicts_with_it():
    torch.manual_seed(0)
    model = _model()
    model.train()
    batch = synthetic_batch(batch=2, frames=4)
    losses = model.loss(batch)
    assert torch.isfinite(losses['loss_reveal_choice']) and model.transformer.training
    losses['loss_reveal_choice'].backward()
    assert model.reveal_chooser.net[0].weight.grad is not None
    # the tokenizer stage has no world model to roll out: no choice loss
    model.set_stage('tokenizer')
    assert 'loss_reveal_choice' not in model.loss(batch)
    model.set_stage('world')
    model.eval()
    pred = model.predict(batch)[0]
    assert pred.pred_occ.shape == (2, 10, 10, 6)
    with pytest.raises(ValueError, match='reveal_chooser needs agent_motion'):
        MODELS.build(tiny_model_cfg(train_stage='world', reveal_chooser=dict()))


def test_chooser_overrides_the_gate_in_the_decoding():
    """A chooser that always keeps gives the forecast of an always-keeping reveal gate."""
    torch.manual_seed(0)
    model = _model()
    model.eval()
    batch = synthetic_batch(batch=1, frames=4)
    torch.nn.init.constant_(model.reveal_chooser.net[-1].bias, 50.0)  # keep everywhere
    chosen = model.predict(batch)[0].pred_occ
    model.reveal_chooser = None
    torch.nn.init.constant_(model.agent_motion.gate_out.bias, 50.0)
    torch.nn.init.zeros_(model.agent_motion.gate_out.weight)
    gated = model.predict(batch)[0].pred_occ
    assert torch.equal(chosen, gated)
