"""Question-aware readout of the LiDAR view-aware queries (instruction-aware querying).

InstructBLIP (Dai et al., "InstructBLIP: Towards General-purpose Vision-Language Models with
Instruction Tuning", NeurIPS 2023) feeds the instruction to its Q-Former so that the few
query tokens handed to the LLM extract the visual features the instruction asks about. Here
the same idea sits between :class:`VATLiDAR` and the LLM: a handful of learned readout
queries attend, in every layer, to the question's token embeddings (the LLM's own frozen
input embeddings, projected) and to the VAT's view-grouped LiDAR queries, and the result is
appended to the LiDAR tokens. The VAT still runs once per LiDAR sample; only this small
readout runs per question. A small or randomly initialised LLM then needs only to read the
answer out of these tokens instead of learning to route its attention over all view groups.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from projects.registry import MODELS
from .vat import VATBlock

__all__ = ['QuestionAwareReadout']


@MODELS.register_module()
class QuestionAwareReadout(BaseModule):
    """Readout queries conditioned on the question, over the LiDAR VAT queries.

    Each of ``n_layers`` :class:`VATBlock` s lets the ``n_queries`` readout queries
    self-attend, then cross-attend to the concatenation of the projected question token
    embeddings (plus a learned position table and a "text" type embedding) and the LiDAR VAT
    queries (plus a "LiDAR" type embedding); padded question positions are masked.

    Args:
        d_model (int): width of the VAT queries and of the readout (``VATLiDAR.d_model``).
        text_dim (int): width of the question embeddings (the LLM hidden size).
        n_queries (int): readout tokens appended to the LiDAR tokens. Defaults to 4.
        n_layers (int): Defaults to 2.
        n_heads (int): Defaults to 4.
        max_question_tokens (int): size of the position table; longer questions are cut
            to their last ``max_question_tokens`` tokens. Defaults to 64.

    Shapes:
        lidar_queries ``(B, Q, d_model)``, question_embeds ``(B, L, text_dim)``,
        question_mask bool / long ``(B, L)`` (1 = token) → ``(B, n_queries, d_model)``.
    """

    def __init__(self, d_model: int, text_dim: int, n_queries: int = 4, n_layers: int = 2,
                 n_heads: int = 4, max_question_tokens: int = 64, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.d_model, self.n_queries = int(d_model), int(n_queries)
        self.max_question_tokens = int(max_question_tokens)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.text_proj = nn.Linear(text_dim, d_model)
        self.text_pos = nn.Parameter(torch.randn(max_question_tokens, d_model) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(2, d_model) * 0.02)  # text, LiDAR
        self.layers = nn.ModuleList(VATBlock(d_model, n_heads) for _ in range(n_layers))
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, lidar_queries: torch.Tensor, question_embeds: torch.Tensor,
                question_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """See the class docstring.

        Raises:
            ValueError: batch sizes or widths disagree.
        """
        b, _, d = lidar_queries.shape
        if question_embeds.shape[0] != b or d != self.d_model:
            raise ValueError(f'QuestionAwareReadout: LiDAR queries {tuple(lidar_queries.shape)} '
                             f'and question embeddings {tuple(question_embeds.shape)} do not '
                             f'match (d_model={self.d_model})')
        if question_mask is None:
            question_mask = torch.ones(question_embeds.shape[:2], dtype=torch.bool,
                                       device=question_embeds.device)
        question_embeds = question_embeds[:, -self.max_question_tokens:]
        question_mask = question_mask[:, -self.max_question_tokens:].bool()
        n_text = question_embeds.shape[1]
        text = (self.text_proj(question_embeds.to(lidar_queries.dtype)) +
                self.text_pos[:n_text] + self.type_embed[0])
        feats = torch.cat([text, lidar_queries + self.type_embed[1]], dim=1)
        blocked = torch.cat([~question_mask, question_mask.new_zeros(b, lidar_queries.shape[1])],
                            dim=1)  # (B, L + Q), True = not attended
        heads = self.layers[0].cross_attn.num_heads if len(self.layers) else 1
        mask = blocked.unsqueeze(1).expand(b, self.n_queries, -1).repeat_interleave(heads, 0)
        q = self.queries.unsqueeze(0).expand(b, -1, -1)
        for layer in self.layers:
            q = layer(q, feats, mask)
        return self.out_norm(q)
