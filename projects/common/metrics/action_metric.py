"""Action-chunk metric with the no-learning baselines (zero, training mean, copy-last)."""
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from projects.registry import METRICS

__all__ = ['ActionMetric']

_NAMES = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


@METRICS.register_module()
class ActionMetric(BaseMetric):
    """Normalised action MSE / L1 per dimension and chunk step, and gripper accuracy, for the
    policy and three baselines in one table.

    Errors are measured in units of the training set's per-dimension standard deviation
    (``(pred - gt) / std``), so "normalised MSE = 1" is the error of predicting the training
    mean on data distributed like the training set. Chunk steps past the episode end
    (``action_mask`` False) are left out. Baselines, all from information available at
    prediction time: ``zero`` (all-zero action), ``mean`` (the training-set mean action),
    ``copy_last`` (the previous step's action for every chunk step; zeros at step 0).
    Gripper accuracy: prediction and target on the same side of the midpoint of the training
    range of the gripper dimension.

    Args:
        stats (str | dict): Training action statistics (``compute_action_stats.py`` JSON).
        gripper_dim (int, optional): Index of the gripper dimension. Defaults to 6.
        action_names (Sequence[str]): Column names. Defaults to dx ... gripper.
        collect_device (str): Defaults to 'cpu'.
        prefix (str): Defaults to 'action'.

    Raises:
        KeyError: When ``stats`` lacks mean / std / min / max.
    """

    default_prefix = 'action'
    BASELINES = ('zero', 'mean', 'copy_last')

    def __init__(self, stats, gripper_dim: Optional[int] = 6,
                 action_names: Sequence[str] = _NAMES, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(stats, str):
            with open(stats, encoding='utf-8') as f:
                stats = json.load(f)
        for k in ('mean', 'std', 'min', 'max'):
            if k not in stats:
                raise KeyError(f'ActionMetric: stats lack {k!r}')
        self.mean = np.asarray(stats['mean'], dtype=np.float64)
        std = np.asarray(stats['std'], dtype=np.float64)
        # dimensions constant in training (std 0, e.g. unused rotations) are reported but
        # left out of the overall averages: their normalised error is undefined
        self.active = std > 1e-12
        self.std = np.where(self.active, std, 1.0)
        self.gripper_dim = gripper_dim
        self.gripper_mid = None if gripper_dim is None else \
            0.5 * (stats['min'][gripper_dim] + stats['max'][gripper_dim])
        self.action_names = list(action_names)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            get = (lambda k: s[k]) if isinstance(s, dict) else (lambda k: getattr(s, k))
            meta = s.metainfo if hasattr(s, 'metainfo') else s
            variants = meta.get('pred_variants') or {}
            self.results.append(dict(
                variants={k: np.asarray(v.cpu() if hasattr(v, 'cpu') else v, dtype=np.float64)
                          for k, v in variants.items()},
                pred=np.asarray(get('pred_actions').cpu(), dtype=np.float64),
                gt=np.asarray(get('gt_actions').cpu(), dtype=np.float64),
                mask=np.asarray(get('action_mask').cpu(), dtype=bool),
                prev=np.asarray(get('prev_action').cpu(), dtype=np.float64)))

    def _scores(self, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> Dict:
        e = (pred - gt) / self.std  # (N, H, A)
        m = mask[..., None].astype(np.float64)
        cnt_dim = np.maximum((m * np.ones_like(e)).sum(axis=(0, 1)), 1)
        nmse_dim = ((e ** 2) * m).sum(axis=(0, 1)) / cnt_dim
        nl1_dim = (np.abs(e) * m).sum(axis=(0, 1)) / cnt_dim
        ea = e[..., self.active]
        cnt_step = np.maximum(m.sum(axis=(0, 2)) * ea.shape[2], 1)
        n_all = max(m.sum() * ea.shape[2], 1)
        out = dict(nmse=float((ea ** 2 * m).sum() / n_all),
                   nl1=float((np.abs(ea) * m).sum() / n_all),
                   nmse_dim=np.where(self.active, nmse_dim, np.nan),
                   nl1_dim=np.where(self.active, nl1_dim, np.nan),
                   nmse_step=((ea ** 2) * m).sum(axis=(0, 2)) / cnt_step)
        if self.gripper_dim is not None:
            g = self.gripper_dim
            same = (pred[..., g] > self.gripper_mid) == (gt[..., g] > self.gripper_mid)
            out['gripper_acc'] = float(same[mask].mean()) if mask.any() else float('nan')
        return out

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        pred = np.stack([r['pred'] for r in results])
        gt = np.stack([r['gt'] for r in results])
        mask = np.stack([r['mask'] for r in results])
        prev = np.stack([r['prev'] for r in results])
        rows = {'model': self._scores(pred, gt, mask)}
        names = list(results[0]['variants']) if results[0]['variants'] else []
        for name in names:
            rows[f'model:{name}'] = self._scores(
                np.stack([r['variants'][name] for r in results]), gt, mask)
        rows.update({
            'zero': self._scores(np.zeros_like(gt), gt, mask),
            'mean': self._scores(np.broadcast_to(self.mean, gt.shape), gt, mask),
            'copy_last': self._scores(np.broadcast_to(prev[:, None], gt.shape), gt, mask)})
        if names:  # the first variant is what pred_actions holds
            rows.pop('model')
        best = min(self.BASELINES, key=lambda b: rows[b]['nmse'])
        metrics = {}
        first = next(iter(rows))
        for name, sc in rows.items():
            pre = '' if name == first else f'{name}/'
            metrics[f'{pre}nmse'] = sc['nmse']
            metrics[f'{pre}nl1'] = sc['nl1']
            if 'gripper_acc' in sc:
                metrics[f'{pre}gripper_acc'] = sc['gripper_acc']
            if name == first:
                for a, v in zip(self.action_names, sc['nmse_dim']):
                    metrics[f'nmse_{a}'] = float(v)
                for a, v in zip(self.action_names, sc['nl1_dim']):
                    metrics[f'nl1_{a}'] = float(v)
                for h, v in enumerate(sc['nmse_step']):
                    metrics[f'nmse_step{h}'] = float(v)
        metrics['best_baseline_nmse'] = rows[best]['nmse']
        metrics['margin_nmse'] = rows[best]['nmse'] - rows[first]['nmse']
        print_log(self.format_table(rows, best, len(results)), logger='current')
        return metrics

    def format_table(self, rows: Dict, best: str, n: int) -> str:
        """Plain-text tables: per dimension (+ overall, gripper accuracy) and per chunk step."""
        w = max(10, max(len(k) for k in rows) + 1)
        head = f'{"":<{w}}{"nMSE":>8}{"nL1":>8}{"grip%":>7} | ' + ''.join(
            f'{a:>8}' for a in self.action_names)
        lines = [f'Action metric on {n} held-out samples (errors in training std units; '
                 f'per-dimension columns: nMSE)', head, '-' * len(head)]
        for name, sc in rows.items():
            g = sc.get('gripper_acc', float('nan')) * 100
            lines.append(f'{name:<{w}}{sc["nmse"]:>8.4f}{sc["nl1"]:>8.4f}{g:>7.1f} | ' +
                         ''.join('       -' if np.isnan(v) else f'{v:>8.4f}'
                                 for v in sc['nmse_dim']))
        first = next(iter(rows))
        steps = len(rows[first]['nmse_step'])
        lines.append(f'{"nMSE per chunk step:":<{max(w, 20)}} ' +
                     ' '.join(f'{"h" + str(h):>7}' for h in range(steps)))
        for name, sc in rows.items():
            lines.append(f'{name:<{max(w, 20)}} ' + ' '.join(f'{v:>7.4f}' for v in sc['nmse_step']))
        for name in [k for k in rows if k not in self.BASELINES]:
            m = rows[best]['nmse'] - rows[name]['nmse']
            lines.append(f'strongest baseline: {best} (nMSE {rows[best]["nmse"]:.4f}); {name} '
                         f'margin {m:+.4f} ({"model better" if m > 0 else "baseline better"})')
        lines.append('(nMSE over the dimensions that vary in training; "-" = constant there)')
        return '\n'.join(lines)
