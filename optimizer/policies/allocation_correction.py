"""Allocation as a bounded correction around the square-root share (an extension of Sec. IV-B3).

For given loads, the shares minimising a server's summed compute and upload delay have a closed form
(``optimizer.baselines.sqrt_shares``): compute ∝ √(D^in Ω^E_k), bandwidth ∝ √(D^in D^up_k / η_k).
The learned policy only tilts them: per associated user k and branch b ∈ {comp, band}

    u_k^b ~ N(μ_θ(e_k, n_j·ŵ_k^b, log n_j), σ_b²),   w_k^b ∝ ŵ_k^b · exp(c · tanh(u_k^b))

renormalised over the server's users U_j (C5, C6 hold with equality), with ŵ the square-root share
and c the bound (default 0.5: no user's weight moves by more than e^{±0.5} relative to ŵ). At
initialisation μ ≈ 0, so the greedy policy is the square-root share itself: a learned allocation
cannot cost seconds. log π_j = Σ_{k ∈ U_j, |U_j| ≥ 2} Σ_b log N(u_k^b) (a lone user's share is 1
whatever u is, so it carries no log-prob); an empty server has log π = 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from optimizer.policies.allocation import TokenEmbedding
from optimizer.policies.common import mlp, tanh

LOG_2PI = math.log(2.0 * math.pi)


def per_user(per_server: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
    """(..., J, K, C) values of each user's own server → (..., K, C) (each user on one server, C4)."""
    return (per_server * assoc.unsqueeze(-1)).sum(-3)


class SqrtCorrectionActor(nn.Module):
    """π_θalloc(u | o^alloc): Gaussian tilt of the square-root share, bounded by c."""

    def __init__(self, num_services: int, max_input_size: int, num_splits: int, hidden: int = 64,
                 embedding_dim: int = 16, bound: float = 0.5, init_log_std: float = -1.0) -> None:
        super().__init__()
        self.bound = bound
        self.embed = TokenEmbedding(num_services, max_input_size, num_splits, embedding_dim)
        self.mean = mlp(3 * embedding_dim + 3, hidden, 2, layers=2, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((2,), float(init_log_std)))

    def _mean(self, tokens: torch.Tensor, assoc: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        count = assoc.float().sum(-1, keepdim=True)                          # (..., J, 1)
        n_user = per_user(count.unsqueeze(-1).expand(*assoc.shape, 1), assoc)  # (..., K, 1)
        scaled = per_user(base, assoc) * n_user                               # 1 = equal share
        x = torch.cat([self.embed(tokens), scaled, n_user.clamp(min=1).log()], dim=-1)
        return self.mean(x).float()

    def shares(self, assoc: torch.Tensor, base: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(..., J, K, 2) shares from the tilt u (..., K, 2) around ``base`` (..., J, K, 2)."""
        weight = base * torch.exp(self.bound * tanh(u)).unsqueeze(-3) * assoc.unsqueeze(-1)
        total = weight.sum(-2, keepdim=True)
        equal = assoc.unsqueeze(-1).float() / assoc.float().sum(-1, keepdim=True).clamp(min=1).unsqueeze(-1)
        return torch.where(total > 0, weight / total.clamp(min=1e-30), equal)

    def _logp_entropy(self, mean, u, assoc):
        log_std = self.log_std.clamp(-5.0, 1.0)
        per = -0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI   # (..., K, 2)
        count = assoc.float().sum(-1, keepdim=True)
        counted = (assoc & (count >= 2)).float()                                    # (..., J, K)
        logp = counted @ per.sum(-1, keepdim=True)                                  # (..., J, 1)
        entropy = counted.sum(-1) * 2 * (0.5 + 0.5 * LOG_2PI) + counted.sum(-1) * log_std.sum()
        return logp.squeeze(-1), entropy

    @torch.no_grad()
    def act(self, tokens: torch.Tensor, assoc: torch.Tensor, base: torch.Tensor,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (..., K, 3) long, assoc (..., J, K), base (..., J, K, 2) → (shares (..., J, K, 2),
        tilt u (..., K, 2), log π (..., J)). Deterministic: u = μ."""
        mean = self._mean(tokens, assoc, base)
        u = mean if deterministic else mean + torch.randn_like(mean) * self.log_std.clamp(-5.0, 1.0).exp()
        logp, _ = self._logp_entropy(mean, u, assoc)
        return self.shares(assoc, base, u), u, logp

    def evaluate(self, tokens: torch.Tensor, assoc: torch.Tensor, base: torch.Tensor,
                 u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(u), entropy), each (..., J)."""
        return self._logp_entropy(self._mean(tokens, assoc, base), u, assoc)
