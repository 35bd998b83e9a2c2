"""Auto-regressive deployment policy (Sec. IV-B1, eq. 28–31) with its GRU-sharing step-value critic.

One agent per server, parameters shared across servers. Every ΔT slots the agent decodes a
variable-length macro-action M_j = (a_1, …, a_L) (eq. 19): starting from x^st = 0 it picks one more
service per step from a categorical masked to services not yet chosen whose D_i still fits in the
remaining storage, so (C7) holds by construction, until none fits (or, optionally, a learned stop
action is taken). The GRU hidden state h_n encodes the observation o_j^deploc = [r, h_j, x^st]
(eq. 14) and the models picked so far.

- log π(M_j) = Σ_n log π(a_n | h_n)                      (eq. 30)
- V(M_j)    = (1/L) Σ_n V(h_n; φ_dep)                     (eq. 29) — mean of valid step values; the
  critic shares the GRU and, when centralised, also sees vec(X(t−ΔT)) (eq. 15).

The rollout stores the sampled sequence with the mask of every step (:class:`DeploymentSample`), and
:meth:`DeploymentActorCritic.evaluate` re-runs the GRU on exactly those inputs and masks, so the PPO
ratio is 1 at the first epoch (the published code recomputed it without the masks: ratio ≈ 2e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optimizer.policies.common import categorical_logp_entropy, mlp, orthogonal_init, sample_categorical


@dataclass
class DeploymentSample:
    """One macro-action per agent (N = B·J agents); L = steps decoded (padded)."""

    deployment: torch.Tensor   # (N, I) bool x_{·,j}
    actions: torch.Tensor      # (N, L) long a_n (0 where the step is inactive); index I = stop
    step_masks: torch.Tensor   # (N, L, A) bool valid choices at step n (A = I, or I + 1 with stop)
    active: torch.Tensor       # (N, L) bool step n sampled an action
    logp: torch.Tensor         # (N,) eq. 30
    value: torch.Tensor        # (N,) eq. 29 (normalised units of the critic)


def deployment_inputs(obs, num_services: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From a DeploymentObs: demand [r, h_j] (B, J, 2I) of eq. 14 and vec(X(t − ΔT)) (B, J, J·I)
    of eq. 15."""
    return obs.local[..., :2 * num_services], obs.glob[..., 3 * num_services:]


class DeploymentActorCritic(nn.Module):
    """GRU policy over services with a step-value head; one module because the GRU is shared."""

    def __init__(self, num_services: int, num_servers: int, hidden: int = 256,
                 stop_action: bool = False, centralised: bool = True) -> None:
        super().__init__()
        self.num_services = num_services
        self.stop_action = stop_action
        self.centralised = centralised
        num_choices = num_services + int(stop_action)
        # step input [I·r, I·h_j, D_i / S_j | x^st, remaining / S_j]: the first three blocks are fixed
        # for the whole sequence, so their projection is computed once (same function as one Linear)
        self.encode_fixed = orthogonal_init(nn.Linear(3 * num_services, hidden))
        self.encode_step = orthogonal_init(nn.Linear(num_services + 1, hidden, bias=False))
        self.gru = nn.GRUCell(hidden, hidden)
        for name, param in self.gru.named_parameters():
            if "weight" in name:
                nn.init.orthogonal_(param)
            else:
                nn.init.zeros_(param)
        self.policy_head = mlp(hidden, hidden, num_choices, layers=1, out_gain=0.01)
        # V(h_n) = w·tanh(W_h h_n + W_x vec(X)) (eq. 29 step value; W_x only when centralised)
        self.value_hidden = orthogonal_init(nn.Linear(hidden, hidden))
        self.value_context = (orthogonal_init(nn.Linear(num_services * num_servers, hidden, bias=False))
                              if centralised else None)
        self.value_out = orthogonal_init(nn.Linear(hidden, 1), 1.0)

    # -- shared pieces ---------------------------------------------------------------------------
    def demand_features(self, demand: torch.Tensor) -> torch.Tensor:
        """[r, h_j] of eq. 14 arrive as shares of all requests (each sums to <= 1); × I makes a
        uniform demand read 1 per service."""
        return demand.float() * self.num_services

    @staticmethod
    def service_mask(chosen: torch.Tensor, storage: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Services not yet chosen with D_i <= S_j − Σ_chosen D_i (C7), in float64 so that rounding
        can never let a deployment exceed S_j."""
        sizes, storage = sizes.double(), storage.double()
        used = (chosen * sizes).sum(-1, keepdim=True)
        return ~chosen & (sizes <= storage.unsqueeze(-1) - used)

    def _step(self, fixed: torch.Tensor, chosen: torch.Tensor, storage: torch.Tensor,
              sizes: torch.Tensor, hidden: torch.Tensor,
              value_ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        used = (chosen * sizes).sum(-1)
        frac = ((storage - used) / storage).unsqueeze(-1).float()
        x = torch.tanh(fixed + self.encode_step(torch.cat([chosen.float(), frac], dim=-1)))
        hidden = self.gru(x, hidden)
        logits = self.policy_head(hidden)
        value = self.value_out(torch.tanh(self.value_hidden(hidden) + value_ctx)).squeeze(-1)
        return hidden, logits, value

    def _prepare(self, demand, prev_deployment, storage_bytes, model_bytes):
        """Per-sequence constants: projection of [I·r, I·h_j, D_i / S_j], critic context, h_0 = 0."""
        size_frac = (model_bytes.unsqueeze(0) / storage_bytes.unsqueeze(-1)).clamp(max=2.0).float()
        fixed = self.encode_fixed(torch.cat([self.demand_features(demand), size_frac], dim=-1))
        if self.value_context is not None:
            value_ctx = self.value_context(prev_deployment.float())
        else:
            value_ctx = torch.zeros_like(fixed)
        hidden = torch.zeros_like(fixed)
        return fixed, value_ctx, hidden

    # -- rollout ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, demand: torch.Tensor, prev_deployment: torch.Tensor, storage_bytes: torch.Tensor,
            model_bytes: torch.Tensor, deterministic: bool = False) -> DeploymentSample:
        """Decode one macro-action per agent.

        demand (N, 2I) = [r, h_j] of eq. 14; prev_deployment (N, J·I) = vec(X(t−ΔT)) of eq. 15;
        storage_bytes (N,) S_j; model_bytes (I,) D_i.
        """
        fixed, value_ctx, hidden = self._prepare(demand, prev_deployment, storage_bytes, model_bytes)
        n_agents, n_services = fixed.shape[0], self.num_services
        chosen = torch.zeros(n_agents, n_services, dtype=torch.bool, device=fixed.device)
        ended = torch.zeros(n_agents, dtype=torch.bool, device=fixed.device)
        actions, masks, actives, logps, values = [], [], [], [], []
        for step in range(n_services + int(self.stop_action)):
            service_mask = self.service_mask(chosen, storage_bytes, model_bytes)
            active = ~ended & service_mask.any(-1)
            if step > 0 and not active.any():
                break
            hidden, logits, value = self._step(fixed, chosen, storage_bytes, model_bytes, hidden,
                                               value_ctx)
            mask = service_mask
            if self.stop_action:
                mask = torch.cat([service_mask, active.unsqueeze(-1)], dim=-1)
            mask = mask & active.unsqueeze(-1)
            action = sample_categorical(logits, mask, deterministic)
            logp, _ = categorical_logp_entropy(logits, mask, action)
            action = torch.where(active, action, torch.zeros_like(action))
            chosen = self._select(chosen, action, active)
            ended = ended | (active & (action == n_services))
            actions.append(action)
            masks.append(mask)
            actives.append(active)
            logps.append(torch.where(active, logp, torch.zeros_like(logp)))
            values.append(value)
        active_all = torch.stack(actives, 1)
        value_w = self._value_weights(active_all)
        value_seq = torch.stack(values, 1)
        return DeploymentSample(
            deployment=chosen, actions=torch.stack(actions, 1), step_masks=torch.stack(masks, 1),
            active=active_all, logp=torch.stack(logps, 1).sum(1),
            value=(value_seq * value_w).sum(1) / value_w.sum(1))

    def _select(self, chosen: torch.Tensor, action: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """x^st after step n: set the picked service (a stop or an inactive step changes nothing)."""
        n_services = self.num_services
        picked = active & (action < n_services)
        one_hot = torch.nn.functional.one_hot(action.clamp(max=n_services - 1), n_services).bool()
        return chosen | (one_hot & picked.unsqueeze(-1))

    @staticmethod
    def _value_weights(active: torch.Tensor) -> torch.Tensor:
        """Eq. 29 averages the valid steps; an empty macro-action (nothing fits) uses step 1's value."""
        weights = active.float()
        weights[:, 0] = 1.0
        return weights

    # -- update ----------------------------------------------------------------------------------
    def evaluate(self, demand: torch.Tensor, prev_deployment: torch.Tensor, storage_bytes: torch.Tensor,
                 model_bytes: torch.Tensor, actions: torch.Tensor, step_masks: torch.Tensor,
                 active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-run the GRU on the stored sequence: (log π(M) eq. 30, mean step entropy, V(M) eq. 29)."""
        fixed, value_ctx, hidden = self._prepare(demand, prev_deployment, storage_bytes, model_bytes)
        chosen = torch.zeros(fixed.shape[0], self.num_services, dtype=torch.bool, device=fixed.device)
        steps = int(active.any(0).nonzero().max().item()) + 1 if active.any() else 1
        logps, entropies, values = [], [], []
        for step in range(steps):
            hidden, logits, value = self._step(fixed, chosen, storage_bytes, model_bytes, hidden,
                                               value_ctx)
            is_active = active[:, step]
            action = actions[:, step]
            logp, entropy = categorical_logp_entropy(logits, step_masks[:, step], action)
            logps.append(torch.where(is_active, logp, torch.zeros_like(logp)))
            entropies.append(torch.where(is_active, entropy, torch.zeros_like(entropy)))
            values.append(value)
            chosen = self._select(chosen, action, is_active)
        value_w = self._value_weights(active[:, :steps])
        value = (torch.stack(values, 1) * value_w).sum(1) / value_w.sum(1)
        entropy = torch.stack(entropies, 1).sum(1) / active[:, :steps].sum(1).clamp(min=1)
        return torch.stack(logps, 1).sum(1), entropy, value
