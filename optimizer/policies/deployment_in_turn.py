"""Coverage-aware deployment: servers decide in turn, each seeing what earlier servers placed.

An extension of Sec. IV-B1 (the paper's GRU policy, :mod:`.deployment`, stays available). Every ΔT
slots the J servers of a copy decide one after another (server 0 first). Server j scores every service
with one small MLP shared by all servers and services,

    s_{j,i} = f_θ(I·r_i, I·h_{j,i}, x_{j,i}(t−ΔT), Σ_j' x_{j',i}(t−ΔT)/J,
                  1[i placed by a server < j], #servers < j holding i / J, 10·D_i/S_j, j/J)
              + β · 1[no server < j placed i]     (β learned, β0 = 1),

and then decodes its macro-action M_j (eq. 19) exactly as the paper does: pick one service at a time
from the categorical softmax(s) over the services not yet chosen that still fit (C7), until none fits.
The scores do not depend on the partial selection, so sampling needs no network call per step: with
Gumbel keys g_i = s_i + G_i, taking services in decreasing g and skipping those that no longer fit
draws exactly that sequence (the exponential-race form of the softmax; a skipped service can never
fit again, storage only fills). Greedy decoding uses g = s. Identical servers do not collapse onto
one set: the second sees what the first placed.

The log-prob is kept per step, log π(a_n) = s_{a_n} − logsumexp_{i ∈ E_n} s_i with E_n the eligible
set before step n, so PPO clips each step's ratio on its own (a product over ≈ 35 steps was clipped at
every update: clip fraction 0.41–0.51). The critic V(o_j) sees the state before the decision only
(demand, previous deployment), never the sampled sets: an action-independent baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optimizer.policies.common import MASKED_LOGIT, mlp

NUM_FEATURES = 8
PLACED_BEFORE, HOLDERS_BEFORE = 4, 5    # the feature columns that depend on earlier servers' choices


@dataclass
class InTurnSample:
    """One decision of every server of B copies; L = most picks of any server (padded)."""

    deployment: torch.Tensor   # (B, J, I) bool
    actions: torch.Tensor      # (B, J, L) long, picks in order (0 where inactive)
    active: torch.Tensor       # (B, J, L) bool
    logp: torch.Tensor         # (B, J, L) per-step log π (0 where inactive)
    value: torch.Tensor        # (B, J) critic (normalised units)


@dataclass
class DeploymentState:
    """What the servers know before a decision: r (B, I), h (B, J, I), X(t−ΔT) (B, J, I) bool,
    S_j (B, J), D_i (I,)."""

    request_share: torch.Tensor
    server_share: torch.Tensor
    previous: torch.Tensor
    storage_bytes: torch.Tensor
    model_bytes: torch.Tensor


def eligible(chosen: torch.Tensor, storage: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Services not chosen with D_i ≤ S_j − Σ_chosen D_i (C7), in float64: never exceeds S_j."""
    sizes, storage = sizes.double(), storage.double()
    used = (chosen.double() * sizes).sum(-1, keepdim=True)
    return ~chosen & (sizes <= storage.unsqueeze(-1) - used)


def step_masks(actions: torch.Tensor, active: torch.Tensor, storage: torch.Tensor,
               sizes: torch.Tensor) -> torch.Tensor:
    """The eligible set E_n of every step of stored picks (B, J, L) → (B, J, L, I) bool, empty on inactive
    steps. It depends on the stored decision only (not on θ), so an update computes it once for all
    its epochs (measured: 30–40 % of a forward pass over the per-step distributions)."""
    one_hot = nn.functional.one_hot(actions, sizes.shape[-1]) * active.unsqueeze(-1)
    chosen = (one_hot.cumsum(2) - one_hot).bool()                        # picked before step n
    return eligible(chosen, storage.unsqueeze(-1), sizes) & active.unsqueeze(-1)


def fill_in_order(keys: torch.Tensor, storage: torch.Tensor, sizes: torch.Tensor):
    """Take services in decreasing ``keys`` (N, I), skipping those that no longer fit.
    Returns (chosen (N, I) bool, picks (N, I) long in order, number of picks (N,)).

    The scan is sequential in the services (what fits depends on what was taken), so it runs over
    Python floats (float64, the same sums as :func:`eligible`): for N ≈ 4 rows and I ≈ 45 services,
    about 20× faster than 45 rounds of tensor ops on N-vectors."""
    order = keys.argsort(dim=-1, descending=True, stable=True)
    N, I = order.shape
    size_of = sizes.double().tolist()
    picks = torch.zeros(N, I, dtype=torch.long)
    counts = torch.zeros(N, dtype=torch.long)
    for row, (ranked, capacity) in enumerate(zip(order.tolist(), storage.double().tolist())):
        used, taken = 0.0, []
        for service in ranked:
            if used + size_of[service] <= capacity:
                used += size_of[service]
                taken.append(service)
        kept = set(taken)
        skipped = [service for service in ranked if service not in kept]
        picks[row] = torch.tensor(taken + skipped, dtype=torch.long)
        counts[row] = len(taken)
    picks, counts = picks.to(keys.device), counts.to(keys.device)
    active = torch.arange(I, device=keys.device) < counts.unsqueeze(-1)
    chosen = torch.zeros(N, I, dtype=torch.bool, device=keys.device).scatter_(1, picks, active)
    return chosen, picks, counts


class InTurnDeployment(nn.Module):
    """Score network f_θ and team critic V_φ of the in-turn deployment layer."""

    def __init__(self, num_services: int, num_servers: int, hidden: int = 64, critic_hidden: int = 128,
                 centralised: bool = True) -> None:
        super().__init__()
        self.num_services, self.num_servers, self.centralised = num_services, num_servers, centralised
        self.score = mlp(NUM_FEATURES, hidden, 1, layers=2, out_gain=0.01)
        # s += β·1[no earlier server placed i]: a learned prior for covering (β0 = 1). Sampling covers
        # by its noise alone; greedy decoding needs the scores to prefer what is still missing (measured:
        # without it a trained policy's greedy decoding left 17.6 % of requests unhosted, sampled 0.5 %).
        self.uncovered_bonus = nn.Parameter(torch.ones(()))
        critic_in = (4 if centralised else 3) * num_services + 1
        self.critic = mlp(critic_in, critic_hidden, 1, layers=2)

    # -- features ---------------------------------------------------------------------------------
    def features(self, state: DeploymentState, before: torch.Tensor) -> torch.Tensor:
        """(B, J, I, F) given ``before`` (B, J, I) = number of servers earlier in turn holding i."""
        I, J = self.num_services, self.num_servers
        prev = state.previous.float()
        shape = prev.shape
        size = (state.model_bytes.double() / state.storage_bytes.double().unsqueeze(-1)).float()
        position = torch.arange(J, device=prev.device, dtype=torch.float32) / J
        blocks = [(state.request_share * I).unsqueeze(1).expand(shape), state.server_share * I, prev,
                  prev.mean(1, keepdim=True).expand(shape), (before > 0).float(), before / J, 10.0 * size,
                  position.view(1, J, 1).expand(shape)]
        return torch.stack(blocks, dim=-1)

    def scores(self, state: DeploymentState, before: torch.Tensor) -> torch.Tensor:
        return self._score(self.features(state, before))

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        uncovered = 1.0 - features[..., PLACED_BEFORE]
        return self.score(features).squeeze(-1).float() + self.uncovered_bonus * uncovered

    def value(self, state: DeploymentState) -> torch.Tensor:
        """V(o_j) (B, J) from the state before the decision (centralised: plus everyone's X(t−ΔT))."""
        I, J = self.num_services, self.num_servers
        B = state.previous.shape[0]
        prev = state.previous.float()
        blocks = [(state.request_share * I).unsqueeze(1).expand(B, J, I), state.server_share * I, prev]
        if self.centralised:
            blocks.append(prev.mean(1, keepdim=True).expand(B, J, I))
        blocks.append((state.storage_bytes.double() / state.model_bytes.double().sum()).float().unsqueeze(-1))
        return self.critic(torch.cat(blocks, dim=-1)).squeeze(-1).float()

    # -- rollout ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, state: DeploymentState, deterministic: bool = False,
            generator: torch.Generator | None = None) -> InTurnSample:
        B, J, I = state.previous.shape
        held = torch.zeros(B, I, device=state.previous.device)
        deployment = torch.zeros(B, J, I, dtype=torch.bool, device=held.device)
        picks, counts = [], []
        base = self.features(state, held.new_zeros(B, J, I))               # (B, J, I, F), nothing placed
        for j in range(J):
            feats = base[:, j].clone()                                       # (B, I, F)
            feats[..., PLACED_BEFORE] = (held > 0).float()                   # as :meth:`features` with
            feats[..., HOLDERS_BEFORE] = held / J                            # before[:, j] = held
            keys = self._score(feats)
            if not deterministic:
                u = torch.rand(keys.shape, generator=generator, device=keys.device).clamp(1e-12, 1.0 - 1e-7)
                keys = keys - torch.log(-torch.log(u))        # + Gumbel(0, 1)
            chosen, order, count = fill_in_order(keys, state.storage_bytes[:, j], state.model_bytes)
            deployment[:, j] = chosen
            held = held + chosen.float()
            picks.append(order)
            counts.append(count)
        steps = max(int(torch.stack(counts).max()), 1)
        actions = torch.stack(picks, 1)[..., :steps]
        active = torch.arange(steps, device=held.device) < torch.stack(counts, 1).unsqueeze(-1)
        actions = torch.where(active, actions, torch.zeros_like(actions))
        logp, _ = self._step_logp_entropy(state, deployment, actions, active)
        return InTurnSample(deployment, actions, active, logp, self.value(state))

    # -- update -----------------------------------------------------------------------------------
    def _step_logp_entropy(self, state: DeploymentState, deployment: torch.Tensor, actions: torch.Tensor,
                           active: torch.Tensor, masks: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step (log π, entropy) (B, J, L) of stored picks, all servers and steps at once; ``masks``:
        their :func:`step_masks`, computed here if not given."""
        if masks is None:
            masks = step_masks(actions, active, state.storage_bytes, state.model_bytes)
        logp_all = self._step_log_policy(state, deployment, masks)
        probs = logp_all.exp() * masks
        entropy = -(probs * logp_all.masked_fill(~masks, 0.0)).sum(-1)
        return _taken(logp_all, actions, active), torch.where(active, entropy, torch.zeros_like(entropy))

    def step_logp(self, state: DeploymentState, deployment: torch.Tensor, actions: torch.Tensor,
                  active: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Per-step log π (B, J, L) of stored picks without the entropy (behaviour cloning needs none:
        measured, a third of a cloning step's forward and backward)."""
        return _taken(self._step_log_policy(state, deployment, masks), actions, active)

    def _step_log_policy(self, state: DeploymentState, deployment: torch.Tensor,
                         masks: torch.Tensor) -> torch.Tensor:
        """log π over the services (B, J, L, I) at every step, each over its eligible set."""
        before = deployment.float().cumsum(1) - deployment.float()          # servers < j holding i
        logits = self.scores(state, before)                                  # (B, J, I)
        masked = logits.unsqueeze(2).expand_as(masks).masked_fill(~masks, MASKED_LOGIT)
        return torch.log_softmax(masked, dim=-1)

    def evaluate(self, state: DeploymentState, deployment: torch.Tensor, actions: torch.Tensor,
                 active: torch.Tensor, masks: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-step log π (B, J, L), per-step entropy (B, J, L), V (B, J)) for stored decisions
        (``masks``: their :func:`step_masks`, computed here if not given)."""
        logp, entropy = self._step_logp_entropy(state, deployment, actions, active, masks)
        return logp, entropy, self.value(state)


def _taken(logp_all: torch.Tensor, actions: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """log π of the picks (B, J, L) from the per-step log π over services, 0 on inactive steps."""
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return torch.where(active, logp, torch.zeros_like(logp))
