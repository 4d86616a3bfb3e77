"""VideoPredictionMetric: PSNR / SSIM against hand-computed values, the table's baselines,
and the FID / FVD / LPIPS plumbing with local TorchScript networks."""
import math

import numpy as np
import pytest
import torch

from projects.common.metrics.video_metric import (VideoPredictionMetric, frame_psnr,
                                                  frame_ssim, frechet_distance)

torch.set_num_threads(1)


def _const(v01, t=1, size=16):
    """Constant frames of value ``v01`` (in [0, 1]) as [-1, 1] tensors."""
    return torch.full((t, 3, size, size), v01 * 2 - 1)


def test_psnr_and_ssim_hand_computed():
    a, b = _const(0.0)[:, :, :, :], _const(0.1)
    # MSE = 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB
    assert float(frame_psnr((a + 1) / 2, (b + 1) / 2)) == pytest.approx(20.0, abs=1e-4)
    # constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01)^2
    c1 = 0.01 ** 2
    expected = (2 * 0.2 * 0.3 + c1) / (0.2 ** 2 + 0.3 ** 2 + c1)
    ssim = frame_ssim((_const(0.2) + 1) / 2, (_const(0.3) + 1) / 2)
    assert float(ssim) == pytest.approx(expected, abs=2e-4)  # float32 window sums
    assert float(frame_ssim((a + 1) / 2, (a + 1) / 2)) == pytest.approx(1.0, abs=1e-6)


def test_metric_table_model_copy_last_and_shuffled_per_step():
    # clip: 2 context frames then 2 future frames, constant grey levels (in [0, 1])
    gt = torch.cat([_const(0.5), _const(0.5), _const(0.6), _const(0.7)])
    pred = torch.cat([_const(0.6), _const(0.6)])       # step 1 exact, step 2 off by 0.1
    shuffled = torch.cat([_const(0.4), _const(0.4)])   # off by 0.2 and 0.3
    metric = VideoPredictionMetric()
    metric.process({}, [dict(gt_frames=gt, pred_frames=pred, pred_frames_shuffled=shuffled,
                             num_context=2, clip_id='c0')])
    res = metric.compute_metrics(metric.results)
    psnr = lambda err: 10 * math.log10(1 / err ** 2)  # noqa: E731
    assert res['psnr_step2'] == pytest.approx(psnr(0.1), abs=1e-3)
    assert res['psnr_step1'] > 60  # exact prediction (capped by the numerical floor)
    assert res['copy_psnr_step1'] == pytest.approx(psnr(0.1), abs=1e-3)  # copy of 0.5
    assert res['copy_psnr_step2'] == pytest.approx(psnr(0.2), abs=1e-3)
    assert res['shuffled_psnr_step1'] == pytest.approx(psnr(0.2), abs=1e-3)
    assert res['shuffled_psnr_step2'] == pytest.approx(psnr(0.3), abs=1e-3)
    assert res['action_gain_psnr'] == pytest.approx(res['psnr_mean'] -
                                                    res['shuffled_psnr_mean'])
    assert res['copy_ssim_mean'] < res['ssim_mean']


def test_metric_averages_per_clip_values_and_rejects_bad_shapes():
    metric = VideoPredictionMetric()
    for v in (0.1, 0.2):
        gt = torch.cat([_const(0.5), _const(0.5 + v)])
        metric.process({}, [dict(gt_frames=gt, pred_frames=_const(0.5), num_context=1)])
    res = metric.compute_metrics(metric.results)
    expected = (10 * math.log10(1 / 0.01) + 10 * math.log10(1 / 0.04)) / 2
    assert res['psnr_step1'] == pytest.approx(expected, abs=1e-3)
    assert 'shuffled_psnr_mean' not in res
    with pytest.raises(ValueError, match='pred_frames'):
        metric.process({}, [dict(gt_frames=_const(0.5, t=3), pred_frames=_const(0.5, t=1),
                                 num_context=1)])
    with pytest.raises(KeyError, match='num_context'):
        metric.process({}, [dict(gt_frames=_const(0.5, t=3), pred_frames=_const(0.5))])


def test_frechet_distance_hand_computed():
    a = np.array([[0.0], [2.0]])   # mean 1, sample variance 2
    b = np.array([[3.0], [5.0]])   # mean 4, sample variance 2
    # (1 - 4)^2 + 2 + 2 - 2 sqrt(2 * 2) = 9
    assert frechet_distance(a, b) == pytest.approx(9.0, abs=1e-6)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


class _FrameFeatures(torch.nn.Module):
    def forward(self, x):  # (N, 3, H, W) in [0, 255]
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], 1)


class _ClipFeatures(torch.nn.Module):
    def forward(self, x):  # (N, 3, T, H, W) in [-1, 1]
        return torch.stack([x.mean(dim=(1, 2, 3, 4)), x[:, :, -1].mean(dim=(1, 2, 3))], 1)


class _PairDistance(torch.nn.Module):
    def forward(self, a, b):
        return (a - b).abs().mean(dim=(1, 2, 3))


def test_fid_fvd_lpips_plumbing_with_local_torchscript_networks(tmp_path):
    paths = {}
    for name, mod in (('fid', _FrameFeatures()), ('fvd', _ClipFeatures()),
                      ('lpips', _PairDistance())):
        paths[name] = str(tmp_path / f'{name}.pt')
        torch.jit.script(mod).save(paths[name])
    metric = VideoPredictionMetric(fid_network=paths['fid'], fid_size=8,
                                   fvd_network=paths['fvd'], fvd_size=8,
                                   lpips_network=paths['lpips'])
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        gt = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
        metric.process({}, [dict(gt_frames=gt, pred_frames=gt[2:] * 0.5, num_context=2)])
    res = metric.compute_metrics(metric.results)
    assert res['fid'] > 0 and res['fvd'] > 0
    # LPIPS network = mean |a - b| on [-1, 1]: the prediction is half the ground truth
    per_clip = [float(m['model_lpips'].mean()) for m in metric.results]
    assert res['lpips_mean'] == pytest.approx(np.mean(per_clip), abs=1e-6)
    with pytest.raises(FileNotFoundError, match='nothing is downloaded'):
        VideoPredictionMetric(fid_network=str(tmp_path / 'missing.pt'))
