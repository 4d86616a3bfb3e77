"""Sensor encoders of the LiDAR-Vision LLM: a pillar BEV encoder on raw points (mmdet3d
components) and a camera encoder (mmdet's ResNet, or a ``transformers`` CLIP / SigLIP vision
model with optional LoRA)."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['PointsBEVEncoder', 'CameraEncoder']


@MODELS.register_module()
class PointsBEVEncoder(BaseModule):
    """Raw LiDAR points → BEV feature map with an mmdet3d detector's front end.

    Runs, in order, hard voxelisation (``mmcv.ops.Voxelization``), the detector's voxel
    encoder (e.g. ``PillarFeatureNet`` / ``HardSimpleVFE``), middle encoder (e.g.
    ``PointPillarsScatter``) and, when given, backbone (``SECOND``) and neck
    (``SECONDFPN``), the same pieces mmdet3d's ``MVXTwoStageDetector.extract_pts_feat`` /
    ``VoxelNet.extract_feat`` run (PointPillars, Lang et al., CVPR 2019).

    Args:
        voxel_layer (dict): ``Voxelization`` kwargs (``voxel_size``, ``point_cloud_range``,
            ``max_num_points``, ``max_voxels``).
        voxel_encoder (dict): mmdet3d voxel encoder config (``type='mmdet3d.PillarFeatureNet'``).
        middle_encoder (dict): mmdet3d middle encoder (``type='mmdet3d.PointPillarsScatter'``).
        backbone (dict, optional): mmdet3d backbone.
        neck (dict, optional): mmdet3d neck.
        out_index (int): which output of a multi-output backbone / neck is the BEV map.
            Defaults to -1 (the last, coarsest).

    Shapes:
        ``points``: list of B tensors ``(N_i, >=4)`` (x, y, z, intensity, ... in metres, the
        LiDAR frame); returns ``(B, C, H, W)``.
    """

    def __init__(self, voxel_layer: Dict, voxel_encoder: Dict, middle_encoder: Dict,
                 backbone: Optional[Dict] = None, neck: Optional[Dict] = None,
                 out_index: int = -1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.out_index = out_index
        from mmcv.ops import Voxelization
        import mmdet3d.models  # noqa: F401  (registers the mmdet3d components)
        self.voxel_layer = Voxelization(**voxel_layer)
        self.voxel_encoder = MODELS.build(voxel_encoder)
        self.middle_encoder = MODELS.build(middle_encoder)
        self.backbone = MODELS.build(backbone) if backbone else None
        self.neck = MODELS.build(neck) if neck else None

    @torch.no_grad()
    def voxelize(self, points: Sequence[torch.Tensor]):
        """Hard voxelisation of a batch (mmdet3d ``Det3DDataPreprocessor`` convention).

        Returns:
            tuple: voxels ``(M, max_points, C)``, num_points ``(M,)``, coors ``(M, 4)`` as
            ``(batch, z, y, x)``.
        """
        voxels, coors, num_points = [], [], []
        for i, pts in enumerate(points):
            v, c, n = self.voxel_layer(pts.contiguous())
            voxels.append(v)
            coors.append(nn.functional.pad(c, (1, 0), value=i))
            num_points.append(n)
        return torch.cat(voxels), torch.cat(num_points), torch.cat(coors)

    def forward(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        voxels, num_points, coors = self.voxelize(points)
        feats = self.voxel_encoder(voxels, num_points, coors)
        x = self.middle_encoder(feats, coors, len(points))
        if self.backbone is not None:
            x = self.backbone(x)
        if self.neck is not None:
            x = self.neck(x)
        if isinstance(x, (list, tuple)):
            x = x[self.out_index]
        return x


@MODELS.register_module()
class CameraEncoder(BaseModule):
    """Multi-view camera encoder: per-camera feature tokens of width ``out_dim``.

    Two backends:
    * ``backbone=dict(type='mmdet.ResNet', ...)`` (no download; random init or ``init_cfg``):
      the last stage's map ``(B*N, C, h, w)`` is flattened to ``h*w`` tokens.
    * ``hf_model=dict(model_id=<local CLIP/SigLIP folder>)`` or ``hf_model=dict(config=
      dict(model_type='clip_vision_model', ...))``: the vision transformer's last hidden
      state (patch tokens); ``lora=dict(r=..., target_modules=[...])`` wraps it with peft.

    Then a linear token adapter to ``out_dim`` + LayerNorm.

    Args:
        out_dim (int): Token width (the VATVision ``d_model``).
        backbone (dict, optional): mmdet backbone config.
        backbone_channels (int): Channels of the backbone's last output. Defaults to 512.
        hf_model (dict, optional): see above.
        lora (dict, optional): peft ``LoraConfig`` kwargs for ``hf_model``.
        frozen (bool): Freeze the backbone (no LoRA). Defaults to False.

    Shapes: ``imgs (B, N, 3, H, W)`` float normalised → ``(B, N, L, out_dim)``.
    """

    def __init__(self, out_dim: int, backbone: Optional[Dict] = None,
                 backbone_channels: int = 512, hf_model: Optional[Dict] = None,
                 lora: Optional[Dict] = None, frozen: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if (backbone is None) == (hf_model is None):
            raise ValueError('CameraEncoder: give exactly one of backbone (mmdet ResNet) and '
                             'hf_model (transformers CLIP / SigLIP vision model)')
        self.is_hf = hf_model is not None
        if self.is_hf:
            from transformers import AutoConfig, AutoModel
            hf_model = dict(hf_model)
            if hf_model.get('model_id'):
                model = AutoModel.from_pretrained(hf_model['model_id'], local_files_only=True)
            else:
                cfg = dict(hf_model['config'])
                model = AutoModel.from_config(AutoConfig.for_model(**cfg))
            channels = model.config.hidden_size
            if lora:
                from peft import LoraConfig, get_peft_model
                model = get_peft_model(model, LoraConfig(**lora))
            self.backbone = model
        else:
            import mmdet.models  # noqa: F401
            self.backbone = MODELS.build(backbone)
            channels = backbone_channels
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.token_adapter = nn.Linear(channels, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def init_weights(self):
        """mmdet backbones follow their ``init_cfg``; a ``transformers`` model keeps its
        weights (its own ``init_weights`` would re-initialise them)."""
        if not self.is_hf and hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        self._is_init = True

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        b, n = imgs.shape[:2]
        x = imgs.flatten(0, 1)
        if self.is_hf:
            tokens = self.backbone(pixel_values=x).last_hidden_state  # (B*N, L, C)
        else:
            feat = self.backbone(x)
            feat = feat[-1] if isinstance(feat, (list, tuple)) else feat
            tokens = feat.flatten(2).transpose(1, 2)
        tokens = self.norm(self.token_adapter(tokens))
        return tokens.view(b, n, tokens.shape[1], -1)
