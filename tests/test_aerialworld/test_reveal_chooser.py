"""RevealChooser: the keep-or-decode choice of newly revealed space that sees both fills."""
import math

import pytest
import torch

from aerialworld_model_helpers import TINY_CLASSES, synthetic_batch, tiny_model_cfg
from test_agent_motion import _model as agent_model
from projects.aerialworld.hooks import RevealChooserFitHook
from projects.aerialworld.models.reveal_chooser import (CONTEXT_FEATURES, FEATURES,
                                                        RevealChooser, reveal_choice_targets)
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
        RevealChooser(interval=-1)
    with pytest.raises(ValueError, match='fit_cfg: unknown keys'):
        RevealChooser(fit_cfg=dict(num_window=8))


def test_context_features_by_hand():
    """The view channels: the kept-everywhere forecast outside the revealed columns (count,
    lowest, highest / Z), zero / -1 inside them, and the revealed mask."""
    keep, fill = _columns()
    view = keep[:, None].repeat(1, 2, 1, 1, 1)
    view[0, :, 1, 0, 2:5] = 1  # a building on (1, 0): z 0 (ground) and 2..4
    revealed = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    revealed[0, 1, 0, 0] = True
    feats = RevealChooser.features(keep, fill, None, FREE, view, revealed)
    assert feats.shape == (1, 2, len(FEATURES) + len(CONTEXT_FEATURES), 2, 2)
    ctx = feats[:, :, len(FEATURES):]
    assert ctx[0, 0, :, 1, 0].tolist() == pytest.approx([4 / 6, 0.0, 4 / 6, 0.0])
    assert ctx[0, 0, :, 0, 0].tolist() == pytest.approx([1 / 6, 0.0, 0.0, 0.0])
    assert ctx[0, 1, :, 0, 0].tolist() == pytest.approx([0.0, -1.0, -1.0, 1.0])  # revealed
    assert torch.equal(feats[:, :, :len(FEATURES)],
                       RevealChooser.features(keep, fill, None, FREE))
    with pytest.raises(ValueError, match='view and revealed'):
        RevealChooser.features(keep, fill, None, FREE, view)


def test_fit_is_deterministic_learns_and_keeps_the_global_rng():
    keep, fill = _columns()
    truth = fill.clone()
    truth[0, 0, 0, 0, 1:4] = FREE
    revealed = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    target, weight = reveal_choice_targets(keep, fill, revealed, truth,
                                           torch.zeros(256, dtype=torch.bool), FREE)
    feats = RevealChooser.features(keep, fill, torch.zeros(1, 2, 2, 2), FREE).repeat(4, 1, 1,
                                                                                     1, 1)
    target, weight = target.repeat(4, 1, 1, 1), weight.repeat(4, 1, 1, 1)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b = RevealChooser(channels=8), RevealChooser(channels=8)
    torch.random.set_rng_state(state)
    ra = a.fit(feats, target, weight, steps=150, batch_size=2, lr=1e-2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    rb = b.fit(feats, target, weight, steps=150, batch_size=2, lr=1e-2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert ra['reveal_choice_acc'] == 1.0 and ra['loss_reveal_choice'] == rb['loss_reveal_choice']
    first = float(RevealChooser(channels=8).loss(feats[:, :, 0], target, weight)[
        'loss_reveal_choice'])  # the untrained chooser: the prior (zero logits)
    assert ra['loss_reveal_choice'] < first / 4
    with pytest.raises(ValueError, match='RevealChooser.fit'):
        a.fit(feats[:0], target[:0], weight[:0])


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


class _Windows(torch.utils.data.Dataset):
    """Training windows packed as the train pipeline packs them."""

    def __init__(self, n):
        self.batch = synthetic_batch(batch=n, frames=4, seed=1)

    def __len__(self):
        return self.batch['occupancy'].shape[0]

    def __getitem__(self, i):
        return dict(inputs=dict(occupancy=self.batch['occupancy'][i],
                                poses=self.batch['poses'][i]))


def test_final_fit_hook_fits_the_context_chooser_on_the_model_rollouts():
    """interval=0: no loss in the loop; the hook's fit on the final model's rollouts changes
    only the chooser, deterministically, and the forecast uses it."""
    torch.manual_seed(0)
    fit_cfg = dict(num_windows=6, rollout_batch_size=4, steps=40, batch_size=2)
    model = agent_model(reveal_chooser=dict(channels=8, interval=0, context=True,
                                            fit_cfg=fit_cfg),
                        data_preprocessor=dict(type='OccupancyDataPreprocessor'))
    model.train()
    batch = synthetic_batch(batch=2, frames=4)
    assert 'loss_reveal_choice' not in model.loss(batch)
    feats, target, weight = model.reveal_choice_data(batch['occupancy'], batch['poses'])
    assert feats.shape == (2, 2, len(FEATURES) + len(CONTEXT_FEATURES), 10, 10)
    assert target.shape == weight.shape == (2, 2, 10, 10)
    others = {k: v.clone() for k, v in model.state_dict().items()
              if not k.startswith('reveal_chooser.')}
    lines = []
    result = RevealChooserFitHook.fit(model, _Windows(7), lines.append)
    assert result['num_windows'] == 6 and model.training
    assert any('ETA' in line for line in lines)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in others.items())
    first = {k: v.clone() for k, v in model.reveal_chooser.state_dict().items()}
    assert RevealChooserFitHook.fit(model, _Windows(7), lines.append)['loss_reveal_choice'] == \
        result['loss_reveal_choice']
    assert all(torch.equal(v, model.reveal_chooser.state_dict()[k]) for k, v in first.items())
    model.eval()
    assert model.predict(batch)[0].pred_occ.shape == (2, 10, 10, 6)
    # without fit_cfg (or in the tokenizer stage) the hook leaves the model alone
    assert RevealChooserFitHook._model(type('R', (), {'model': _model()})()) is None
