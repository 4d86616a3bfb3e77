"""Action-conditioned latent dynamics: FiLM conditioning and a convolutional recurrent core."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['FiLM', 'ConvGRUCell', 'ConvLSTMCell', 'FiLMRecurrentDynamics']

State = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., "FiLM: Visual Reasoning with a General
    Conditioning Layer", AAAI 2018): ``x * (1 + gamma(a)) + beta(a)`` per channel.

    ``gamma`` and ``beta`` come from a 2-layer MLP of the action; its last layer starts at
    zero, so an untrained FiLM is the identity and learns how much the action matters.

    Args:
        action_dim (int): Action size ``A``.
        channels (int): Modulated channels ``C``.
        hidden (int): MLP width. Defaults to 128.
    """

    def __init__(self, action_dim: int, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(action_dim, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Modulate.

        Args:
            x (Tensor): ``(B, C, h, w)``.
            action (Tensor): ``(B, A)``.

        Returns:
            Tensor: ``(B, C, h, w)``.
        """
        gamma, beta = self.mlp(action).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + gamma) + beta


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell (Ballas et al., "Delving Deeper into Convolutional Networks for
    Learning Video Representations", ICLR 2016)::

        r, u = sigmoid(conv([x, h]))
        c = tanh(conv([x, r * h]))
        h' = (1 - u) * h + u * c

    Args:
        in_channels (int): Input channels.
        hidden (int): Hidden channels.
        kernel_size (int): Conv kernel. Defaults to 3.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel_size, padding=pad)
        self.cand = nn.Conv2d(in_channels + hidden, hidden, kernel_size, padding=pad)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        """Zero state ``(B, hidden, h, w)`` for input ``x``."""
        return x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One step; returns ``(output, new_state)`` (both the new hidden map)."""
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        c = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        h = (1 - u) * h + u * c
        return h, h


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al., "Convolutional LSTM Network", NeurIPS 2015),
    without peepholes: ``i, f, o, g = conv([x, h])``, ``c' = f c + i g``, ``h' = o tanh(c')``.

    Args:
        in_channels (int): Input channels.
        hidden (int): Hidden channels.
        kernel_size (int): Conv kernel. Defaults to 3.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size,
                              padding=kernel_size // 2)

    def init_state(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Zero ``(h, c)``, each ``(B, hidden, h, w)``."""
        z = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
        return z, z.clone()

    def forward(self, x: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]
                ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """One step; returns ``(h', (h', c'))``."""
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], 1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


@MODELS.register_module()
class FiLMRecurrentDynamics(BaseModule):
    """Latent transition ``z_{t+1} = z_t + W h_t`` of a FiLM-conditioned recurrent stack.

    Per step: the latent ``z_t`` ``(B, latent_dim, h, w)`` is FiLM-modulated by the action
    ``a_t``, lifted to ``hidden_dim`` by a 1x1 conv, passed through ``num_layers``
    ConvGRU / ConvLSTM cells (each layer's output FiLM-modulated by ``a_t`` again, dropout
    between layers) and projected back to a latent residual. The last projection starts at
    zero, so an untrained model predicts ``z_{t+1} = z_t`` (the latent copy-last).

    Args:
        latent_dim (int): Latent channels. Defaults to 256.
        action_dim (int): Action size ``A``. Defaults to 4.
        hidden_dim (int): Recurrent channels. Defaults to 512.
        num_layers (int): Recurrent layers. Defaults to 4.
        dropout (float): Dropout between layers. Defaults to 0.1.
        cell (str): ``'gru'`` or ``'lstm'``. Defaults to ``'gru'``.
        kernel_size (int): Kernel of the recurrent convs. Defaults to 3.
        film_hidden (int): Width of the FiLM MLPs. Defaults to 128.
        with_cp (bool): Gradient checkpointing of each step. Defaults to False.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: Unknown ``cell`` or ``num_layers < 1``.
    """

    def __init__(self,
                 latent_dim: int = 256,
                 action_dim: int = 4,
                 hidden_dim: int = 512,
                 num_layers: int = 4,
                 dropout: float = 0.1,
                 cell: str = 'gru',
                 kernel_size: int = 3,
                 film_hidden: int = 128,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        cells = dict(gru=ConvGRUCell, lstm=ConvLSTMCell)
        if cell not in cells:
            raise ValueError(f'FiLMRecurrentDynamics: cell={cell!r}, expected one of '
                             f'{sorted(cells)}')
        if num_layers < 1:
            raise ValueError(f'FiLMRecurrentDynamics: num_layers={num_layers} must be >= 1')
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.with_cp = with_cp
        self.film_in = FiLM(action_dim, latent_dim, film_hidden)
        self.lift = nn.Conv2d(latent_dim, hidden_dim, 1)
        self.cells = nn.ModuleList(cells[cell](hidden_dim, hidden_dim, kernel_size)
                                   for _ in range(num_layers))
        self.films = nn.ModuleList(FiLM(action_dim, hidden_dim, film_hidden)
                                   for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Conv2d(hidden_dim, latent_dim, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def init_state(self, z: torch.Tensor) -> List[State]:
        """Zero recurrent states for a latent batch ``z`` ``(B, latent_dim, h, w)``."""
        x = z.new_zeros(z.shape[0], self.lift.out_channels, *z.shape[2:])
        return [c.init_state(x) for c in self.cells]

    def _step(self, z: torch.Tensor, action: torch.Tensor, *flat_state):
        states = self._unflatten(list(flat_state))
        x = self.lift(self.film_in(z, action))
        new_states = []
        for i, (cell, film) in enumerate(zip(self.cells, self.films)):
            y, s = cell(x, states[i])
            new_states.append(s)
            y = film(y, action)
            x = self.dropout(y) if i < len(self.cells) - 1 else y
        return (z + self.out(x), *self._flatten(new_states))

    @staticmethod
    def _flatten(states: List[State]) -> List[torch.Tensor]:
        out = []
        for s in states:
            out.extend(s if isinstance(s, tuple) else (s,))
        return out

    def _unflatten(self, flat: List[torch.Tensor]) -> List[State]:
        if isinstance(self.cells[0], ConvLSTMCell):
            return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(self.cells))]
        return flat

    def forward(self, z: torch.Tensor, action: torch.Tensor,
                state: Optional[List[State]] = None) -> Tuple[torch.Tensor, List[State]]:
        """Predict the next latent.

        Args:
            z (Tensor): ``(B, latent_dim, h, w)`` latent of the current frame.
            action (Tensor): ``(B, A)`` action taken at the current frame.
            state (list, optional): Recurrent states from the previous step; zeros if None.

        Returns:
            tuple: ``(z_next (B, latent_dim, h, w), new_state)``.

        Raises:
            ValueError: ``action`` does not have ``action_dim`` entries.
        """
        if action.shape[-1] != self.action_dim:
            raise ValueError(f'FiLMRecurrentDynamics: action has {action.shape[-1]} entries, '
                             f'the model was built with action_dim={self.action_dim}')
        if state is None:
            state = self.init_state(z)
        flat = self._flatten(state)
        if self.with_cp and torch.is_grad_enabled():
            out = cp.checkpoint(self._step, z, action, *flat, use_reentrant=False)
        else:
            out = self._step(z, action, *flat)
        return out[0], self._unflatten(list(out[1:]))
