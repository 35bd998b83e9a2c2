"""Attention-based allocation policy (Sec. IV-B3) with a Dirichlet over the associated users.

One agent per server, parameters shared across servers. Each associated user k ∈ U_j(t) is a token
u_k = MLP([e_k^mod; e_k^inp; e_k^spl]) (eq. 18 features, embedded). The server context g_j(t) is
MLP([mean of its users' u_k, |U_j| / K]); per branch b ∈ {comp, band} a query q_j^b = W^b g_j and
keys κ_k^b = MLP_key^b(u_k) give scores q·κ/√d_h and attention weights w^b = softmax over U_j only.

Exploration and a proper log-prob for PPO come from a Dirichlet whose mean is close to the attention weights:
α_k^b = w_k^b · |U_j| · c^b + 1, with a learned concentration c^b per branch; its mean is
(c^b w_k^b + 1/|U_j|) / (c^b + 1), the attention weights blended with the equal share. α ≥ 1 keeps the
density bounded and unimodal: no sample sits at a vertex, and the (α_k − 1) log w_k terms of the
log-prob never reward starving a user. (With α_min = 0.05, a first version, PPO drove each server's
attention onto one user: after 45 iterations the learned allocation gave a mean delay of 15.5 s
where equal shares gave 9.4 s with the same users and deployment.) The action is the
pair of share vectors (w^comp, w^band) on the simplex of the associated users (C5, C6 hold with
equality); shares of other users are 0. log π = log Dir(w^comp) + log Dir(w^band), computed only over
U_j: a server with one user has log π = 0 (the share is forced to 1) and a server with no user has
log π = 0 and no NaN anywhere (the published code took a softmax over nothing).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from optimizer.policies.common import MASKED_LOGIT, mlp, orthogonal_init, tanh

ALPHA_MIN = 1.0       # α_k >= 1: bounded, unimodal density (see the module docstring)
SHARE_FLOOR = 1e-6    # stored shares are floored, so log w stays finite at update time


def user_tokens(tokens: torch.Tensor, num_services: int, max_input_size: int,
                num_splits: int) -> torch.Tensor:
    """Integer (service i, input size D^in, split z) per user (..., K, 3) from the env's per-server
    features (..., J, K, 3) = [i / (I − 1), D^in / high, z / (Z − 1)] of eq. 18, which are zero for
    unassociated users; each user sits on exactly one server (C4), so a sum over J recovers it."""
    scale = tokens.new_tensor([max(num_services - 1, 1), max_input_size, max(num_splits - 1, 1)])
    return (tokens.sum(-3) * scale).round().long()


class TokenEmbedding(nn.Module):
    """[e^mod; e^inp; e^spl] from integer (service, input size, split) tokens (eq. 18, Sec. IV-B3)."""

    def __init__(self, num_services: int, max_input_size: int, num_splits: int, dim: int) -> None:
        super().__init__()
        self.limits = (num_services, max_input_size, num_splits)
        self.model = nn.Embedding(num_services, dim)
        self.input_size = nn.Embedding(max_input_size, dim)
        self.split = nn.Embedding(num_splits, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        model = tokens[..., 0].clamp(0, self.limits[0] - 1)
        size = (tokens[..., 1] - 1).clamp(0, self.limits[1] - 1)
        split = tokens[..., 2].clamp(0, self.limits[2] - 1)
        return torch.cat([self.model(model), self.input_size(size), self.split(split)], dim=-1)


def dirichlet_logp_entropy(alpha: torch.Tensor, mask: torch.Tensor,
                           shares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-density and entropy of Dir(α) restricted to the True entries of mask (last dim).

    log p(w) = lgamma(α0) − Σ lgamma(α_k) + Σ (α_k − 1) log w_k,  α0 = Σ α_k over the mask.
    H = Σ lgamma(α_k) − lgamma(α0) + (α0 − n) ψ(α0) − Σ (α_k − 1) ψ(α_k).
    Both are 0 when n ≤ 1 (a point mass), so empty servers contribute nothing.
    """
    n = mask.sum(-1)
    alpha = torch.where(mask, alpha, torch.ones_like(alpha))
    zero = torch.zeros_like(alpha)
    alpha0 = torch.where(mask, alpha, zero).sum(-1).clamp(min=1e-6)
    lg = torch.where(mask, torch.lgamma(alpha), zero).sum(-1)
    log_w = torch.where(mask, shares.clamp(min=SHARE_FLOOR).log(), zero)
    logp = torch.lgamma(alpha0) - lg + (torch.where(mask, alpha - 1, zero) * log_w).sum(-1)
    entropy = (lg - torch.lgamma(alpha0) + (alpha0 - n) * torch.digamma(alpha0)
               - torch.where(mask, (alpha - 1) * torch.digamma(alpha), zero).sum(-1))
    point_mass = n <= 1
    return torch.where(point_mass, 0.0, logp), torch.where(point_mass, 0.0, entropy)


class AllocationActor(nn.Module):
    """π_θalloc(w^comp, w^band | o_j^alloc): two attention branches, Dirichlet exploration.

    Every user is associated with exactly one server (C4), so user embeddings and keys are computed
    once per user and each server attends over its own users through the association mask.
    """

    def __init__(self, num_services: int, max_input_size: int, num_splits: int, hidden: int = 128,
                 embedding_dim: int = 16, init_concentration: float = 5.0) -> None:
        super().__init__()
        self.embed = TokenEmbedding(num_services, max_input_size, num_splits, embedding_dim)
        self.token = mlp(3 * embedding_dim, hidden, hidden, layers=1)
        self.context = mlp(hidden + 1, hidden, hidden, layers=1)
        self.keys = nn.ModuleList(mlp(hidden, hidden, hidden, layers=1) for _ in range(2))
        self.queries = nn.ModuleList(orthogonal_init(nn.Linear(hidden, hidden), 1.0) for _ in range(2))
        self.log_concentration = nn.Parameter(torch.full((2,), math.log(init_concentration)))
        self.hidden = hidden

    def attention(self, user_tokens: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
        """Attention weights (..., J, K, 2) over each server's users (0 elsewhere), both branches."""
        users = tanh(self.token(self.embed(user_tokens)))                 # (..., K, H)
        context = tanh(self.context(server_pool(users, assoc)))            # (..., J, H) = g_j
        weights = []
        for key_net, query_net in zip(self.keys, self.queries):
            scores = query_net(context) @ key_net(users).transpose(-1, -2) / math.sqrt(self.hidden)
            scores = scores.float()                             # softmax in float32 under autocast
            scores = scores.masked_fill(~assoc, MASKED_LOGIT)
            weights.append(torch.softmax(scores, dim=-1) * assoc.float())   # no user: all 0, no NaN
        return torch.stack(weights, dim=-1)

    def concentration(self, user_tokens: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
        """Dirichlet α (..., J, K, 2) whose mean over each server's users is the attention weights
        blended with the equal share."""
        weights = self.attention(user_tokens, assoc)
        n = assoc.float().sum(-1, keepdim=True).unsqueeze(-1)
        scale = self.log_concentration.clamp(-3.0, 6.0).exp()
        return weights * n * scale + ALPHA_MIN

    @torch.no_grad()
    def act(self, user_tokens: torch.Tensor, assoc: torch.Tensor,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """user_tokens (..., K, 3) long (:func:`user_tokens`), assoc (..., J, K) →
        shares (..., J, K, 2) [compute, bandwidth] and log π (..., J). Deterministic: the mean."""
        alpha = self.concentration(user_tokens, assoc)
        mask2 = assoc.unsqueeze(-1).expand_as(alpha)
        if deterministic:
            draws = alpha
        else:
            draws = torch.distributions.Gamma(alpha, torch.ones_like(alpha)).sample()
        draws = torch.where(mask2, draws.clamp(min=1e-30), torch.zeros_like(draws))
        shares = draws / draws.sum(-2, keepdim=True).clamp(min=1e-30)
        shares = torch.where(mask2, shares.clamp(min=SHARE_FLOOR), torch.zeros_like(shares))
        shares = shares / shares.sum(-2, keepdim=True).clamp(min=1e-30)
        logp, _ = self._logp_entropy(alpha, assoc, shares)
        return shares, logp

    @staticmethod
    def _logp_entropy(alpha, assoc, shares):
        lp_c, ent_c = dirichlet_logp_entropy(alpha[..., 0], assoc, shares[..., 0])
        lp_b, ent_b = dirichlet_logp_entropy(alpha[..., 1], assoc, shares[..., 1])
        return lp_c + lp_b, ent_c + ent_b

    def evaluate(self, user_tokens: torch.Tensor, assoc: torch.Tensor,
                 shares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(shares), entropy), each (..., J), for stored shares."""
        return self._logp_entropy(self.concentration(user_tokens, assoc), assoc, shares)


def server_pool(users: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
    """[mean of the server's user features, |U_j| / K] (..., J, H + 1); zeros for an empty server."""
    weights = assoc.float()
    count = weights.sum(-1, keepdim=True)
    pooled = weights @ users / count.clamp(min=1.0)
    return torch.cat([pooled, count / assoc.shape[-1]], dim=-1)


class AllocationCritic(nn.Module):
    """V_φalloc per server from its pooled users; centralised (MAPPO) also sees all servers' pools."""

    def __init__(self, num_services: int, max_input_size: int, num_splits: int, hidden: int = 128,
                 embedding_dim: int = 16, centralised: bool = True) -> None:
        super().__init__()
        self.centralised = centralised
        self.embed = TokenEmbedding(num_services, max_input_size, num_splits, embedding_dim)
        self.token = mlp(3 * embedding_dim, hidden, hidden, layers=1)
        in_dim = (2 if centralised else 1) * (hidden + 1)
        self.value = mlp(in_dim, hidden, 1, layers=2)

    def forward(self, user_tokens: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
        """user_tokens (..., K, 3), assoc (..., J, K) → V (..., J)."""
        own = server_pool(tanh(self.token(self.embed(user_tokens))), assoc)
        if self.centralised:
            own = torch.cat([own, own.mean(-2, keepdim=True).expand_as(own)], dim=-1)
        return self.value(own).squeeze(-1).float()
