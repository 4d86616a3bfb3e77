"""Losses of the video world model, registered in :data:`projects.registry.MODELS`.

Every loss is called with the rollout dict of :class:`VideoWorldModel` (keys documented in
:meth:`projects.video_world.models.VideoWorldModel.rollout`) and returns the weighted scalar.
Frames are in [-1, 1]; losses that need [0, 1] (MS-SSIM) convert.
"""
import logging
import os.path as osp
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from projects.registry import MODELS

__all__ = ['ReconstructionLoss', 'HorizonWeightedPredictionLoss', 'PerceptualLoss',
           'LatentRegularizationLoss', 'LatentConsistencyLoss', 'VGGFeatureExtractor',
           'horizon_weights']


def _pixel_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Element-wise ``'l1'``, ``'mse'`` or ``'smooth_l1'`` (no reduction)."""
    if kind == 'l1':
        return (pred - target).abs()
    if kind == 'mse':
        return (pred - target) ** 2
    if kind == 'smooth_l1':
        return F.smooth_l1_loss(pred, target, reduction='none', beta=0.1)
    raise ValueError(f'unknown pixel loss {kind!r}, expected l1, mse or smooth_l1')


@MODELS.register_module()
class ReconstructionLoss(nn.Module):
    """Auto-encoder reconstruction loss: ``mean |D(E(x_t)) - x_t|`` over every frame.

    Args:
        loss_weight (float): Weight. Defaults to 1.0 (seed ``recon_weight``).
        kind (str): ``'l1'``, ``'mse'`` or ``'smooth_l1'``. Defaults to ``'l1'``.
        loss_name (str): Log key. Defaults to ``'loss_recon'``.
    """

    def __init__(self, loss_weight: float = 1.0, kind: str = 'l1',
                 loss_name: str = 'loss_recon') -> None:
        super().__init__()
        _pixel_loss(torch.zeros(1), torch.zeros(1), kind)
        self.loss_weight, self.kind, self.loss_name = loss_weight, kind, loss_name

    def forward(self, rollout: dict) -> torch.Tensor:
        """Weighted loss of ``rollout['recon']`` against ``rollout['recon_target']``
        (``(B, R, 3, H, W)``; all frames, or the observed ones, see ``VideoWorldModel``)."""
        target = rollout.get('recon_target', rollout['frames'])
        return self.loss_weight * _pixel_loss(rollout['recon'], target, self.kind).mean()


def horizon_weights(horizons: torch.Tensor, scheme: Union[str, Sequence[float]]
                    ) -> torch.Tensor:
    """Per-frame weights of the prediction loss, normalised to mean 1.

    Args:
        horizons (Tensor): ``(N,)`` long, the rollout step of each predicted frame (1 = one
            step after the last observed input).
        scheme (str | Sequence[float]): ``'uniform'``; ``'linear'`` (``w_h = h``, later
            steps, which are harder and matter most for open-loop use, count more);
            ``'inverse'`` (``w_h = 1 / h``); or explicit weights ``w_1, w_2, ...`` (the last
            one is used beyond its length).

    Returns:
        Tensor: ``(N,)`` float weights with mean 1.

    Raises:
        ValueError: Unknown scheme or a non-positive weight.
    """
    h = horizons.float()
    if isinstance(scheme, str):
        if scheme == 'uniform':
            w = torch.ones_like(h)
        elif scheme == 'linear':
            w = h
        elif scheme == 'inverse':
            w = 1.0 / h
        else:
            raise ValueError(f'horizon_weights: unknown scheme {scheme!r} (uniform, linear, '
                             'inverse or a list of weights)')
    else:
        table = torch.as_tensor(list(scheme), dtype=torch.float32, device=h.device)
        if (table <= 0).any():
            raise ValueError(f'horizon_weights: weights must be positive, got {list(scheme)}')
        w = table[(horizons - 1).clamp(max=len(table) - 1)]
    return w / w.mean()


@MODELS.register_module()
class HorizonWeightedPredictionLoss(nn.Module):
    """Prediction loss over the rollout, weighted by horizon.

    ``sum_j w_{h(j)} * l_j / N`` over the predicted frames ``j = 1 .. T-1``, with ``h(j)``
    the rollout step of frame ``j`` (see :func:`horizon_weights`) and the per-frame term

        l_j = (1 - alpha) * mean pixel(x̂_j, x_j) + alpha * (1 - SSIM(x̂_j, x_j))

    (``alpha = ssim_weight``; the L1 + SSIM mix of Zhao et al., "Loss Functions for Image
    Restoration with Neural Networks", IEEE TCI 2017, who use ``alpha = 0.84``). SSIM is
    Wang et al. 2004 on frames mapped to [0, 1] (Gaussian window 11, sigma 1.5, torchmetrics,
    the same settings as :class:`VideoPredictionMetric`). A pure pixel loss averages the
    possible futures of a moving object into a blur; the SSIM term rewards keeping local
    structure sharp. ``alpha = 0`` (default) is the plain pixel loss.

    Args:
        loss_weight (float): Weight. Defaults to 1.0 (seed ``pred_weight``).
        horizon_weighting (str | Sequence[float]): See :func:`horizon_weights`. Defaults to
            ``'linear'``.
        kind (str): ``'l1'``, ``'mse'`` or ``'smooth_l1'``. Defaults to ``'l1'``.
        ssim_weight (float): ``alpha`` in [0, 1]. Defaults to 0.0.
        loss_name (str): Log key. Defaults to ``'loss_pred'``.

    Raises:
        ValueError: ``ssim_weight`` outside [0, 1], unknown ``kind`` or weighting.
    """

    def __init__(self, loss_weight: float = 1.0,
                 horizon_weighting: Union[str, Sequence[float]] = 'linear',
                 kind: str = 'l1', ssim_weight: float = 0.0,
                 loss_name: str = 'loss_pred') -> None:
        super().__init__()
        horizon_weights(torch.ones(1, dtype=torch.long), horizon_weighting)
        _pixel_loss(torch.zeros(1), torch.zeros(1), kind)
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f'HorizonWeightedPredictionLoss: ssim_weight={ssim_weight} must '
                             'be in [0, 1]')
        self.loss_weight, self.kind, self.loss_name = loss_weight, kind, loss_name
        self.ssim_weight = float(ssim_weight)
        self.horizon_weighting = horizon_weighting

    def forward(self, rollout: dict) -> torch.Tensor:
        """Weighted loss of ``rollout['pred_frames']`` (B, T-1, 3, H, W) against frames
        ``1 .. T-1``, horizons from ``rollout['horizons']`` (T-1,)."""
        pred, target = rollout['pred_frames'], rollout['frames'][:, 1:]
        per_frame = _pixel_loss(pred, target, self.kind).mean(dim=(0, 2, 3, 4))
        if self.ssim_weight > 0:
            from torchmetrics.functional.image import structural_similarity_index_measure
            b, s = pred.shape[:2]
            p01 = ((pred.flatten(0, 1).float() + 1) / 2).clamp(0, 1)
            t01 = ((target.flatten(0, 1).float() + 1) / 2).clamp(0, 1)
            ssim = structural_similarity_index_measure(p01, t01, data_range=1.0,
                                                       reduction='none')
            dssim = (1.0 - ssim.view(b, s)).mean(dim=0).to(per_frame)
            per_frame = (1 - self.ssim_weight) * per_frame + self.ssim_weight * dssim
        w = horizon_weights(rollout['horizons'], self.horizon_weighting).to(per_frame)
        return self.loss_weight * (w * per_frame).mean()


class VGGFeatureExtractor(nn.Module):
    """VGG-16 convolutional trunk (Simonyan & Zisserman 2015) up to ``relu4_3``, loaded from
    a local state dict in the torchvision key layout (``features.{i}.weight``/``bias``; a
    full classifier checkpoint is accepted, its other keys are ignored).

    Args:
        checkpoint (str): Path of the ``.pth`` state dict.
        layers (Sequence[int]): Indices (into ``features``) of the ReLU outputs compared.
            Defaults to (3, 8, 15, 22): relu1_2, relu2_2, relu3_3, relu4_3.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        KeyError: A VGG conv weight is missing from the checkpoint (named).
        ValueError: A weight has the wrong shape (named, with both shapes).
    """

    CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512)

    def __init__(self, checkpoint: str, layers: Sequence[int] = (3, 8, 15, 22)) -> None:
        super().__init__()
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'VGGFeatureExtractor: checkpoint {checkpoint!r} does not '
                                    'exist (a torchvision-layout VGG-16 state dict is expected)')
        mods, cin = [], 3
        for v in self.CFG:
            if v == 'M':
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*mods)
        self.layers = tuple(layers)
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
        own = self.features.state_dict()
        loaded = {}
        for key, param in own.items():
            src = f'features.{key}'
            if src not in state:
                raise KeyError(f'VGGFeatureExtractor: {checkpoint!r} has no {src!r}')
            if tuple(state[src].shape) != tuple(param.shape):
                raise ValueError(f'VGGFeatureExtractor: {src!r} in {checkpoint!r} has shape '
                                 f'{tuple(state[src].shape)}, expected {tuple(param.shape)}')
            loaded[key] = state[src]
        self.features.load_state_dict(loaded)
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x01: torch.Tensor) -> list:
        """Features of images ``(N, 3, H, W)`` in [0, 1] (ImageNet-normalised inside)."""
        x = (x01 - self.mean) / self.std
        feats = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                feats.append(x)
            if i >= max(self.layers):
                break
        return feats


@MODELS.register_module()
class PerceptualLoss(nn.Module):
    """Perceptual loss on the predicted frames: VGG-16 feature L1 (Johnson et al. 2016) when a
    local checkpoint is given, otherwise ``1 - MS-SSIM`` (Wang et al. 2003) from torchmetrics.

    Nothing is downloaded. Without ``vgg_checkpoint`` the fallback is announced once in the
    log ("PerceptualLoss: no vgg_checkpoint given, using 1 - MS-SSIM ...").

    Args:
        loss_weight (float): Weight. Defaults to 0.1 (seed ``perceptual_weight``).
        vgg_checkpoint (str, optional): Local VGG-16 state dict (torchvision layout).
        ms_ssim_betas (Sequence[float]): Scale weights of MS-SSIM; fewer scales for small
            frames (the image side must exceed ``(kernel_size - 1) * 2 ** (scales - 1)``).
            Defaults to the first three of Wang et al.'s weights, renormalised.
        ms_ssim_kernel_size (int): Gaussian window. Defaults to 7.
        on (str): ``'pred'`` (predicted frames) or ``'both'`` (also the reconstruction).
            Defaults to ``'pred'``.
        loss_name (str): Log key. Defaults to ``'loss_perceptual'``.
    """

    def __init__(self, loss_weight: float = 0.1, vgg_checkpoint: Optional[str] = None,
                 ms_ssim_betas: Sequence[float] = (0.0448, 0.2856, 0.3001),
                 ms_ssim_kernel_size: int = 7, on: str = 'pred',
                 loss_name: str = 'loss_perceptual') -> None:
        super().__init__()
        if on not in ('pred', 'both'):
            raise ValueError(f"PerceptualLoss: on={on!r}, expected 'pred' or 'both'")
        self.loss_weight, self.on, self.loss_name = loss_weight, on, loss_name
        total = float(sum(ms_ssim_betas))
        self.betas = tuple(b / total for b in ms_ssim_betas)
        self.kernel_size = ms_ssim_kernel_size
        if vgg_checkpoint:
            self.vgg = VGGFeatureExtractor(vgg_checkpoint)
            self.mode = 'vgg'
            print_log(f'PerceptualLoss: VGG-16 features from {vgg_checkpoint}', logger='current')
        else:
            self.vgg = None
            self.mode = 'ms_ssim'
            print_log('PerceptualLoss: no vgg_checkpoint given, using 1 - MS-SSIM '
                      f'(torchmetrics, {len(self.betas)} scales, kernel {self.kernel_size}) '
                      'as the perceptual term', logger='current', level=logging.WARNING)

    def _term(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = ((pred.flatten(0, 1) + 1) / 2).clamp(0, 1)
        t = ((target.flatten(0, 1) + 1) / 2).clamp(0, 1)
        if self.mode == 'vgg':
            return sum(F.l1_loss(a, b) for a, b in zip(self.vgg(p), self.vgg(t)))
        from torchmetrics.functional.image import multiscale_structural_similarity_index_measure
        ms = multiscale_structural_similarity_index_measure(
            p.float(), t.float(), data_range=1.0, kernel_size=self.kernel_size,
            betas=self.betas, normalize='relu')
        return 1.0 - ms

    def forward(self, rollout: dict) -> torch.Tensor:
        """Weighted perceptual loss of ``rollout['pred_frames']`` (and ``'recon'``)."""
        loss = self._term(rollout['pred_frames'], rollout['frames'][:, 1:])
        if self.on == 'both':
            loss = loss + self._term(rollout['recon'],
                                     rollout.get('recon_target', rollout['frames']))
        return self.loss_weight * loss


@MODELS.register_module()
class LatentRegularizationLoss(nn.Module):
    """L2 penalty on the encoder latents, ``mean z^2`` (keeps the latent scale bounded so the
    dynamics cannot shrink the consistency loss by shrinking the latents).

    Args:
        loss_weight (float): Weight. Defaults to 0.01 (seed ``latent_reg_weight``).
        loss_name (str): Log key. Defaults to ``'loss_latent_reg'``.
    """

    def __init__(self, loss_weight: float = 0.01, loss_name: str = 'loss_latent_reg') -> None:
        super().__init__()
        self.loss_weight, self.loss_name = loss_weight, loss_name

    def forward(self, rollout: dict) -> torch.Tensor:
        """Weighted ``mean(rollout['latents'] ** 2)``."""
        return self.loss_weight * rollout['latents'].pow(2).mean()


@MODELS.register_module()
class LatentConsistencyLoss(nn.Module):
    """Temporal latent consistency: the dynamics' predicted latent of frame ``t + 1`` against
    the encoder's latent of the true frame ``t + 1``, ``mean (ẑ_{t+1} - sg(z_{t+1}))^2``.

    Args:
        loss_weight (float): Weight. Defaults to 0.1 (seed ``temporal_weight``).
        detach_target (bool): Stop the gradient into the target latent (so the encoder is
            not pulled towards the dynamics). Defaults to True.
        loss_name (str): Log key. Defaults to ``'loss_latent_consistency'``.
    """

    def __init__(self, loss_weight: float = 0.1, detach_target: bool = True,
                 loss_name: str = 'loss_latent_consistency') -> None:
        super().__init__()
        self.loss_weight, self.detach_target, self.loss_name = (loss_weight, detach_target,
                                                                loss_name)

    def forward(self, rollout: dict) -> torch.Tensor:
        """Weighted MSE of ``rollout['pred_latents']`` against ``rollout['latents'][:, 1:]``."""
        target = rollout['latents'][:, 1:]
        if self.detach_target:
            target = target.detach()
        return self.loss_weight * F.mse_loss(rollout['pred_latents'], target)
