"""Fit AerialWorld's reveal chooser on the final model's own rollouts."""
import time

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import broadcast, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['RevealChooserFitHook']


@HOOKS.register_module()
class RevealChooserFitHook(Hook):
    """After the last training iteration, fit ``model.reveal_chooser`` on the final model.

    The chooser picks, per newly revealed BEV column and future step, the last frame's column
    or the decoded one (:class:`~projects.aerialworld.models.RevealChooser`); what it should
    pick depends on the rollouts of the model it serves. This hook rolls the final model out
    on ``fit_cfg.num_windows`` training windows (drawn with ``fit_cfg.seed``), builds the
    chooser's features and IoU-cost targets (:meth:`AerialWorld.reveal_choice_data`) and fits
    the chooser from fresh weights (:meth:`RevealChooser.fit`), before the final checkpoint
    is written and the final validation runs (priority ``HIGH``: before ``CheckpointHook``).
    The tokenizer, world model, pose branch and agent head are not touched. Logs progress with
    an ETA. With several processes every rank fits on the same windows with the same seed and
    rank 0's weights are broadcast.

    Does nothing for models without ``reveal_chooser.fit_cfg``, outside the world / joint
    stages, or for windows shorter than ``num_history + num_future`` (it can stay in the
    AerialWorld hook list of every config).
    """

    priority = 'HIGH'

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        chooser = getattr(model, 'reveal_chooser', None)
        if chooser is None or getattr(chooser, 'fit_cfg', None) is None:
            return None
        if getattr(model, 'train_stage', None) not in ('world', 'joint'):
            return None
        return model

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Fit at the last training iteration (see the class docstring)."""
        if not self.is_last_train_iter(runner):
            return
        model = self._model(runner)
        if model is not None:
            self.fit(model, runner.train_dataloader.dataset, runner.logger.info)

    @staticmethod
    def fit(model, dataset, log=print) -> dict:
        """Roll ``model`` out on training windows of ``dataset`` and fit its chooser.

        Args:
            model (AerialWorld): Model with ``reveal_chooser.fit_cfg``.
            dataset (Dataset): Training windows (items as the train pipeline packs them).
            log (callable): Progress lines. Defaults to print.

        Returns:
            dict: :meth:`RevealChooser.fit`'s results plus ``num_windows`` and
            ``rollout_seconds``; empty if the windows are too short.

        Raises:
            ValueError: On an empty dataset.
        """
        chooser = model.reveal_chooser
        cfg = chooser.fit_cfg
        if len(dataset) == 0:
            raise ValueError('RevealChooserFitHook: the training dataset is empty')
        gen = torch.Generator().manual_seed(int(cfg['seed']))
        order = torch.randperm(len(dataset), generator=gen)[:int(cfg['num_windows'])].tolist()
        step = int(cfg['rollout_batch_size'])
        batches = [order[i:i + step] for i in range(0, len(order), step)]
        log(f'reveal chooser fit: rolling the final model out on {len(order)} training '
            f'windows ({len(batches)} batches of {step})')
        start = time.time()
        was_training = model.training
        model.eval()  # the agent head's prior as at inference
        try:
            data = RevealChooserFitHook._rollouts(model, dataset, batches, cfg, log, start)
        finally:
            model.train(was_training)
        if data is None:
            return {}
        feats, targets, weights = data
        rollout_s = time.time() - start
        device = next(chooser.parameters()).device
        with torch.enable_grad():
            result = chooser.fit(torch.cat(feats).to(device), torch.cat(targets).to(device),
                                 torch.cat(weights).to(device), steps=int(cfg['steps']),
                                 batch_size=int(cfg['batch_size']), lr=float(cfg['lr']),
                                 seed=int(cfg['seed']), log=log)
        for p in chooser.parameters():
            broadcast(p.data, src=0)
        result.update(num_windows=len(order), rollout_seconds=rollout_s)
        log(f'reveal chooser fit (rank {get_rank()}): {len(order)} windows, rollouts '
            f'{rollout_s:.0f} s, fit {result["seconds"]:.0f} s, weighted accuracy '
            f'{result["reveal_choice_acc"]:.4f}, loss {result["loss_reveal_choice"]:.4f}')
        return result

    @staticmethod
    def _rollouts(model, dataset, batches, cfg, log, start):
        """Chooser data of every batch of window indices (None: windows too short)."""
        feats, targets, weights = [], [], []
        for i, idx in enumerate(batches):
            data = model.data_preprocessor(pseudo_collate([dataset[j] for j in idx]), False)
            occ, poses = model._unpack(data['inputs'])
            if occ.shape[1] < model.num_history + model.num_future:
                log('reveal chooser fit: skipped (windows shorter than num_history + '
                    'num_future)')
                return None
            f, t, w = model.reveal_choice_data(occ, poses)
            feats.append(f.cpu())
            targets.append(t.cpu())
            weights.append(w.cpu())
            if i == 0 or (i + 1) % 16 == 0 or i + 1 == len(batches):
                per = (time.time() - start) / (i + 1)
                log(f'reveal chooser fit: rollout {i + 1}/{len(batches)}, ETA '
                    f'{per * (len(batches) - i - 1):.0f} s (then {cfg["steps"]} fit steps)')
        return feats, targets, weights
