"""Per-horizon PSNR / SSIM of video predictions beside the copy-last-frame baseline and the
model driven by shuffled actions; optional FID / FVD / LPIPS from local feature networks.

Definitions (frames mapped from [-1, 1] to [0, 1] first, ``data_range = 1``):

* PSNR (dB) of one frame: ``10 log10(1 / MSE)`` over all pixels and channels
  (``torchmetrics.functional.image.peak_signal_noise_ratio``, per frame).
* SSIM of one frame: Wang et al. 2004, Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03
  (``torchmetrics.functional.image.structural_similarity_index_measure``), averaged over
  the image and channels.
* Step ``k`` = the ``k``-th open-loop prediction after the last observed frame; a table
  cell is the mean over clips of the per-frame value. ``mean`` averages the steps.
* Baselines: ``copy-last`` repeats the last observed frame at every step; ``shuffled
  actions`` is the model's rollout with the actions of another clip (what the model owes to
  the actions).
"""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from projects.registry import METRICS

__all__ = ['VideoPredictionMetric', 'frame_psnr', 'frame_ssim', 'frechet_distance',
           'load_feature_network']


def _to01(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (clamped), float32."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def frame_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per frame.

    Args:
        pred (Tensor): ``(K, 3, H, W)`` in [0, 1].
        target (Tensor): ``(K, 3, H, W)`` in [0, 1].

    Returns:
        Tensor: ``(K,)`` dB (``inf`` for identical frames is capped by torchmetrics' eps).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio
    return peak_signal_noise_ratio(pred, target, data_range=1.0, reduction='none',
                                   dim=(1, 2, 3))


def frame_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per frame (``(K, 3, H, W)`` in [0, 1] -> ``(K,)``), see the module docstring."""
    from torchmetrics.functional.image import structural_similarity_index_measure
    return structural_similarity_index_measure(pred, target, data_range=1.0,
                                               reduction='none')


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (Heusel et al. 2017,
    used by FID and, on video features, FVD of Unterthiner et al. 2018)::

        |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    Args:
        feats_a (ndarray): ``(N, D)``.
        feats_b (ndarray): ``(M, D)``.

    Returns:
        float: The distance (>= 0 up to numerical error).

    Raises:
        ValueError: Fewer than 2 samples on a side, or different feature sizes.
    """
    from scipy import linalg
    if feats_a.shape[0] < 2 or feats_b.shape[0] < 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f'frechet_distance: need >= 2 samples of the same size, got '
                         f'{feats_a.shape} and {feats_b.shape}')
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    cov_a = np.atleast_2d(np.cov(feats_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(feats_b, rowvar=False))
    covmean, _ = linalg.sqrtm(cov_a.dot(cov_b), disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps).dot(cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def load_feature_network(path: str) -> torch.nn.Module:
    """Load a TorchScript feature network from a local file (no download), in eval mode.

    The FID / FVD / LPIPS networks are the TorchScript exports the community uses for
    reproducible numbers (e.g. the Inception-v3 ``pt_inception-2015-12-05`` export of
    StyleGAN2-ADA's metrics, the I3D ``i3d_torchscript.pt`` of StyleGAN-V's FVD); the README
    of the config family names the file a reported number used.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import os.path as osp
    if not osp.isfile(path):
        raise FileNotFoundError(f'feature network {path!r} not found (a TorchScript file is '
                                'expected; nothing is downloaded)')
    net = torch.jit.load(path, map_location='cpu')
    net.eval()
    return net


@METRICS.register_module()
class VideoPredictionMetric(BaseMetric):
    """PSNR / SSIM per open-loop step for the model, copy-last and shuffled actions.

    Each prediction (a :class:`projects.video_world.structures.VideoDataSample` as a dict)
    must hold ``gt_frames`` ``(T, 3, H, W)`` and ``pred_frames`` ``(K, 3, H, W)`` in
    [-1, 1], metainfo ``num_context`` (``K = T - num_context``), and optionally
    ``pred_frames_shuffled``. Results are per clip, reduced in :meth:`compute_metrics`
    (DDP-safe). A plain-text table (rows: source x metric, columns: steps and mean) is
    logged.

    Optional distribution metrics (all take a local TorchScript network, see
    :func:`load_feature_network`):

    * ``fid_network``: frame features ``net(x)`` for ``x`` ``(N, 3, H, W)`` uint8-valued
      floats in [0, 255] (the StyleGAN2-ADA Inception export's input), resized to
      ``fid_size``; FID over every predicted vs ground-truth frame.
    * ``fvd_network``: clip features ``net(x)`` for ``x`` ``(N, 3, T, H, W)`` in [-1, 1]
      resized to ``fvd_size`` (the I3D export's input); FVD over predicted vs ground-truth
      future clips.
    * ``lpips_network``: ``net(a, b)`` -> per-pair distance for ``a``, ``b`` in [-1, 1];
      LPIPS per step.

    Args:
        prefix (str, optional): Metric-name prefix. Defaults to ``'video'``.
        fid_network (str, optional): Path of the FID feature network.
        fid_size (int): Frame side for the FID network. Defaults to 299.
        fvd_network (str, optional): Path of the FVD feature network.
        fvd_size (int): Frame side for the FVD network. Defaults to 224.
        lpips_network (str, optional): Path of the LPIPS network.
        collect_device (str): See :class:`mmengine.evaluator.BaseMetric`.

    Raises:
        KeyError: A prediction lacks ``gt_frames``, ``pred_frames`` or ``num_context``.
        ValueError: ``pred_frames`` and the ground-truth future differ in shape.
    """

    default_prefix = 'video'

    def __init__(self, prefix: Optional[str] = None, fid_network: Optional[str] = None,
                 fid_size: int = 299, fvd_network: Optional[str] = None, fvd_size: int = 224,
                 lpips_network: Optional[str] = None, collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.fid_net = load_feature_network(fid_network) if fid_network else None
        self.fvd_net = load_feature_network(fvd_network) if fvd_network else None
        self.lpips_net = load_feature_network(lpips_network) if lpips_network else None
        self.fid_size, self.fvd_size = int(fid_size), int(fvd_size)
        self.networks = dict(fid=fid_network, fvd=fvd_network, lpips=lpips_network)

    @torch.no_grad()
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Per-clip, per-step values (see the class docstring)."""
        import torch.nn.functional as F
        for ds in data_samples:
            for key in ('gt_frames', 'pred_frames', 'num_context'):
                if key not in ds:
                    raise KeyError(f'VideoPredictionMetric: prediction without {key!r} '
                                   f'(keys: {sorted(ds)})')
            c = int(ds['num_context'])
            gt = _to01(ds['gt_frames'].cpu())
            future = gt[c:]
            pred = _to01(ds['pred_frames'].cpu())
            if pred.shape != future.shape:
                raise ValueError(f'VideoPredictionMetric: pred_frames {tuple(pred.shape)} vs '
                                 f'ground-truth future {tuple(future.shape)} (num_context={c})')
            copy = gt[c - 1:c].expand_as(future)
            res = dict(clip_id=ds.get('clip_id'),
                       model_psnr=frame_psnr(pred, future).numpy(),
                       model_ssim=frame_ssim(pred, future).numpy(),
                       copy_psnr=frame_psnr(copy, future).numpy(),
                       copy_ssim=frame_ssim(copy, future).numpy())
            if 'pred_frames_shuffled' in ds:
                shuf = _to01(ds['pred_frames_shuffled'].cpu())
                res['shuffled_psnr'] = frame_psnr(shuf, future).numpy()
                res['shuffled_ssim'] = frame_ssim(shuf, future).numpy()
            if self.lpips_net is not None:
                a, b = pred * 2 - 1, future * 2 - 1
                res['model_lpips'] = self.lpips_net(a, b).reshape(-1).numpy()
                res['copy_lpips'] = self.lpips_net(copy * 2 - 1, b).reshape(-1).numpy()
            if self.fid_net is not None:
                def fid_feats(x):
                    x = F.interpolate(x, size=(self.fid_size, self.fid_size), mode='bilinear',
                                      align_corners=False)
                    return self.fid_net(x * 255).reshape(x.shape[0], -1).numpy()
                res['fid_pred'], res['fid_gt'] = fid_feats(pred), fid_feats(future)
            if self.fvd_net is not None:
                def fvd_feats(x):
                    x = F.interpolate(x, size=(self.fvd_size, self.fvd_size), mode='bilinear',
                                      align_corners=False)
                    x = (x * 2 - 1).permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, K, h, w)
                    return self.fvd_net(x).reshape(1, -1).numpy()
                res['fvd_pred'], res['fvd_gt'] = fvd_feats(pred), fvd_feats(future)
            self.results.append(res)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Average per step over clips, log the table, return flat metrics."""
        out: Dict[str, float] = {}
        rows = [['source', 'metric'] + [f'step {k + 1}' for k in
                                        range(len(results[0]['model_psnr']))] + ['mean']]
        names = dict(model='model', copy='copy-last', shuffled='shuffled actions')
        for metric in ('psnr', 'ssim', 'lpips'):
            for src in ('model', 'copy', 'shuffled'):
                key = f'{src}_{metric}'
                if key not in results[0]:
                    continue
                per_step = np.stack([r[key] for r in results]).mean(0)
                mean = float(per_step.mean())
                tag = '' if src == 'model' else f'{src}_'
                out[f'{tag}{metric}_mean'] = mean
                for k, v in enumerate(per_step):
                    out[f'{tag}{metric}_step{k + 1}'] = float(v)
                fmt = '{:.2f}' if metric == 'psnr' else '{:.4f}'
                rows.append([names[src], metric.upper()] + [fmt.format(v) for v in per_step] +
                            [fmt.format(mean)])
        if 'shuffled_psnr' in results[0]:
            out['action_gain_psnr'] = out['psnr_mean'] - out['shuffled_psnr_mean']
        if 'fid_pred' in results[0]:
            out['fid'] = frechet_distance(np.concatenate([r['fid_pred'] for r in results]),
                                          np.concatenate([r['fid_gt'] for r in results]))
        if 'fvd_pred' in results[0]:
            if len(results) < 2:
                print_log('VideoPredictionMetric: FVD needs >= 2 clips, skipped',
                          logger='current', level=logging.WARNING)
            else:
                out['fvd'] = frechet_distance(np.concatenate([r['fvd_pred'] for r in results]),
                                              np.concatenate([r['fvd_gt'] for r in results]))
        table = AsciiTable(rows).table
        extra = ', '.join(f'{k.upper()} {out[k]:.3f} ({self.networks[k]})'
                          for k in ('fid', 'fvd') if k in out)
        print_log(f'Open-loop prediction on {len(results)} clips (frames in [0, 1]):\n{table}'
                  + (f'\n{extra}' if extra else ''), logger='current')
        return out
