"""User layer (association + partitioning, Sec. IV-A/IV-B2): MAPPO actor and two critics.

One agent per user, parameters shared across users. The actor sees the local observation
o_k^usrloc (eq. 16: the requested model and input size — one-hot in the env, which the first linear
layer turns into the embeddings e_k^mod, e_k^inp — and vec(X(t)), plus channel gains when the env
observes them) and picks a^usr = (σ_k, z_k) (eq. 20): a server from a categorical masked by
``server_mask`` and a split point from a categorical masked by ``split_mask`` (0..L_i), so an invalid
choice has probability exactly 0. log π(a) = log π(σ) + log π(z).

Two critics estimate the reward value V^R and the delay-cost value V^C (eq. 32, 38). Centralised
(MAPPO) critics see the global observation o^usrglob (eq. 17) together with the agent's own local
observation — an "agent-specific global state" (Yu et al., MAPPO), since eq. 17 alone is identical for
every user while their rewards differ. Decentralised (IPPO) critics see only the local observation.
"""

from __future__ import annotations

import torch
from torch import nn

from optimizer.policies.common import (SlotSharedLinear, SlotSplit, Tanh, categorical_logp_entropy, mlp,
                                       orthogonal_init, sample_categorical, tanh)


class UserActor(nn.Module):
    """π_θusr(σ, z | o^usrloc): a shared Tanh trunk, a server head (J) and a split head (Z).

    With ``channel_cols`` (the J channel features of the observation) the server logits add a term
    shared by all servers, v·tanh(W h + c_j w + b) for server j's channel feature c_j: a user learns
    "prefer the stronger channel" once for every server instead of once per server index (an
    extension of the paper's MLP head; README, departures). With ``split_cols`` (F estimated prices per
    split, split-major) the split logits add w(h)·f_z, a per-user weighting of split z's prices f_z with
    w(h) = W h + b: the form of a Lagrangian score −(μ1 C^priv + μ2 e + λ τ), whose weights the user
    learns per state. (A shared tanh head v·tanh(W h + U f_z) learned the same cost and cost 27 % of an
    iteration: BENCHMARKS, Speed.)
    """

    def __init__(self, local_dim: int, num_servers: int, num_splits: int, hidden: int = 256,
                 shared_cols: tuple[int, int] | None = None, channel_cols: tuple[int, int] | None = None,
                 channel_hidden: int = 32, split_cols: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.trunk = nn.Sequential(SlotSharedLinear(local_dim, hidden, shared_cols), Tanh(),
                                   orthogonal_init(nn.Linear(hidden, hidden)), Tanh())
        self.server_head = mlp(hidden, hidden, num_servers, layers=0, out_gain=0.01)
        self.split_head = mlp(hidden, hidden, num_splits, layers=0, out_gain=0.01)
        self.channel_cols = channel_cols
        if channel_cols is not None:
            self.channel_query = orthogonal_init(nn.Linear(hidden, channel_hidden))
            self.channel_in = nn.Parameter(torch.randn(channel_hidden))
            self.channel_out = orthogonal_init(nn.Linear(channel_hidden, 1, bias=False), 0.01)
        self.split_cols, self.num_splits = split_cols, num_splits
        if split_cols is not None:
            per_split = (split_cols[1] - split_cols[0]) // num_splits
            self.split_price = orthogonal_init(nn.Linear(hidden, per_split), 0.01)

    def logits(self, local: torch.Tensor | SlotSplit) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(local)
        server = self.server_head(h)
        if self.channel_cols is not None:
            query = self.channel_query(h)             # bf16 under autocast: the (..., K, J, H2) tensor below
            channel = self._channel(local).to(query.dtype).contiguous().unsqueeze(-1)
            channel = channel * self.channel_in.to(query.dtype)
            per_server = tanh(query.unsqueeze(-2) + channel)                           # (..., K, J, H2)
            server = server + self.channel_out(per_server).squeeze(-1)
        split = self.split_head(h)
        if self.split_cols is not None:
            weight = self.split_price(h).float()                                             # (..., K, F)
            prices = self._columns(local, self.split_cols).float().unflatten(-1, (self.num_splits, -1))
            split = split + (prices * weight.unsqueeze(-2)).sum(-1)                           # (..., K, Z)
        return server, split

    def _channel(self, local: torch.Tensor | SlotSplit) -> torch.Tensor:
        return self._columns(local, self.channel_cols)

    def _columns(self, local: torch.Tensor | SlotSplit, cols: tuple[int, int]) -> torch.Tensor:
        if isinstance(local, SlotSplit):
            return local.columns(cols, self.trunk[0].shared)
        a, b = cols
        return local[..., a:b]

    @torch.no_grad()
    def act(self, local: torch.Tensor | SlotSplit, server_mask: torch.Tensor, split_mask: torch.Tensor,
            deterministic: bool = False, generator: torch.Generator | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (server, split) per user with log π (eq. 20). local (..., K, d) → (..., K) each."""
        server_logits, split_logits = self.logits(local)
        server = sample_categorical(server_logits, server_mask, deterministic, generator)
        split = sample_categorical(split_logits, split_mask, deterministic, generator)
        logp_server, _ = categorical_logp_entropy(server_logits, server_mask, server)
        logp_split, _ = categorical_logp_entropy(split_logits, split_mask, split)
        return server, split, logp_server + logp_split

    def evaluate(self, local: torch.Tensor | SlotSplit, server_mask: torch.Tensor, split_mask: torch.Tensor,
                 server: torch.Tensor, split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(σ, z), entropy) under the stored masks."""
        server_logits, split_logits = self.logits(local)
        logp_server, ent_server = categorical_logp_entropy(server_logits, server_mask, server)
        logp_split, ent_split = categorical_logp_entropy(split_logits, split_mask, split)
        return logp_server + logp_split, ent_server + ent_split


class _SplitInputValue(nn.Module):
    """A Tanh MLP on [glob, local] whose first layer is split as W_g·glob + W_l·local, so the
    global part is computed once per slot instead of once per user (same function, K× cheaper)."""

    def __init__(self, local_dim: int, global_dim: int, hidden: int,
                 shared_cols: tuple[int, int] | None) -> None:
        super().__init__()
        self.local_in = SlotSharedLinear(local_dim, hidden, shared_cols)
        self.global_in = orthogonal_init(nn.Linear(global_dim, hidden, bias=False)) if global_dim else None
        self.rest = nn.Sequential(Tanh(), mlp(hidden, hidden, 1, layers=1))

    def forward(self, local: torch.Tensor | SlotSplit, glob: torch.Tensor | None) -> torch.Tensor:
        h = self.local_in(local)
        if self.global_in is not None:
            h = h + self.global_in(glob).unsqueeze(-2)
        return self.rest(h).squeeze(-1).float()


class UserCritics(nn.Module):
    """V^R (reward, eq. 25) and V^C (delay cost c_k = τ_k, eq. 27) per user, in normalised units."""

    def __init__(self, local_dim: int, global_dim: int, hidden: int = 256, centralised: bool = True,
                 shared_cols: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.centralised = centralised
        view_dim = global_dim if centralised else 0
        self.reward = _SplitInputValue(local_dim, view_dim, hidden, shared_cols)
        self.cost = _SplitInputValue(local_dim, view_dim, hidden, shared_cols)

    def forward(self, local: torch.Tensor | SlotSplit, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """local (..., K, d_loc), glob (..., G) → (V^R, V^C), each (..., K)."""
        view = glob if self.centralised else None
        return self.reward(local, view), self.cost(local, view)
