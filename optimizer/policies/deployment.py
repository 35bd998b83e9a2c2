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
Decoding must go step by step (each input depends on the sampled action), but at update time the
actions are known: the step inputs x^st(n) are rebuilt from them at once (teacher forcing), so the
input side of the GRU, the policy and the value heads each run as one matrix product over all steps;
only the recurrence h_n = GRU(h_{n−1}) loops. Both paths call the same :meth:`_recur`, so they agree
to the bit under bf16 autocast too (torch's fused ``nn.GRU`` and its step-by-step use do not).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optimizer.policies.common import categorical_logp_entropy, mlp, orthogonal_init, sample_categorical, tanh


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
                 stop_action: bool = False, centralised: bool = True, observe_previous: bool = False) -> None:
        super().__init__()
        self.num_services = num_services
        self.num_servers = num_servers
        self.stop_action = stop_action
        self.centralised = centralised
        self.observe_previous = observe_previous
        num_choices = num_services + int(stop_action)
        # step input [I·r, I·h_j, D_i / S_j (, x_j(t−ΔT), coverage) | x^st, remaining / S_j]: the blocks
        # before | are fixed for the whole sequence, so their projection is computed once (same as one
        # Linear). With observe_previous (an extension of eq. 14, off by default) the actor also sees
        # its own previous deployment x_{·,j}(t − ΔT) and the share of servers that hosted each service:
        # a server can then keep its models (no migration, eq. 23) without every server sharing the
        # policy collapsing onto the same set, and can see what nobody hosts.
        fixed_blocks = 3 + 2 * int(observe_previous)
        self.encode_fixed = orthogonal_init(nn.Linear(fixed_blocks * num_services, hidden))
        self.encode_step = orthogonal_init(nn.Linear(num_services + 1, hidden, bias=False))
        # GRU cell (Cho et al. 2014; torch's gate order r, z, n), orthogonal weights, zero biases
        self.gru_input = orthogonal_init(nn.Linear(hidden, 3 * hidden), 1.0)
        self.gru_hidden = orthogonal_init(nn.Linear(hidden, 3 * hidden), 1.0)
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

    def _inputs(self, fixed: torch.Tensor, chosen: torch.Tensor, storage: torch.Tensor,
                sizes: torch.Tensor) -> torch.Tensor:
        """GRU input of a step from x^st (..., I) and the remaining storage fraction; ``fixed`` and
        ``storage`` broadcast over any step dimension of ``chosen``."""
        used = (chosen * sizes).sum(-1)
        frac = ((storage - used) / storage).unsqueeze(-1).float()
        return tanh(fixed + self.encode_step(torch.cat([chosen.float(), frac], dim=-1)))

    def _step_values(self, hidden: torch.Tensor, value_ctx: torch.Tensor) -> torch.Tensor:
        """Step values V(h_n) (eq. 29) from GRU states (..., H)."""
        return self.value_out(tanh(self.value_hidden(hidden) + value_ctx)).squeeze(-1).float()

    def _recur(self, gates_x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One GRU step from the input-side gate pre-activations W_x x + b_x (N, 3H):
        r = σ(x_r + h_r), u = σ(x_u + h_u), n = tanh(x_n + r ⊙ h_n), h' = (1 − u) ⊙ n + u ⊙ h,
        with the element-wise part in float32 whatever the matmul precision."""
        x_r, x_u, x_n = gates_x.float().chunk(3, dim=-1)
        h_r, h_u, h_n = self.gru_hidden(hidden).float().chunk(3, dim=-1)
        reset = torch.sigmoid(x_r + h_r)
        update = torch.sigmoid(x_u + h_u)
        candidate = tanh(x_n + reset * h_n)
        return candidate + update * (hidden - candidate)

    def _step(self, fixed: torch.Tensor, chosen: torch.Tensor, storage: torch.Tensor,
              sizes: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode step: (h_n, logits); step values are computed afterwards, all steps at once."""
        hidden = self._recur(self.gru_input(self._inputs(fixed, chosen, storage, sizes)), hidden)
        return hidden, self.policy_head(hidden)

    def previous_deployment(self, prev_deployment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_{·,j}(t − ΔT), Σ_j' x_{·,j'}(t − ΔT) / J), each (N, I), from vec(X(t − ΔT)) (N, J·I).

        Agents come ordered (copy, server), N = B·J, as everywhere in the trainer: agent n is server
        n mod J, so its own row is block n mod J of its copy's vec(X).
        """
        J, I = self.num_servers, self.num_services
        x = prev_deployment.float().view(-1, J, J, I)              # (B, agent j, server j', I)
        own = torch.diagonal(x, dim1=1, dim2=2).transpose(1, 2)     # (B, J, I): row j of agent j
        return own.reshape(-1, I), x.mean(2).reshape(-1, I)

    def _prepare(self, demand, prev_deployment, storage_bytes, model_bytes):
        """Per-sequence constants: projection of [I·r, I·h_j, D_i / S_j (, x_j(t−ΔT), coverage)],
        critic context, h_0 = 0."""
        size_frac = (model_bytes.unsqueeze(0) / storage_bytes.unsqueeze(-1)).clamp(max=2.0).float()
        blocks = [self.demand_features(demand), size_frac]
        if self.observe_previous:
            blocks += list(self.previous_deployment(prev_deployment))
        fixed = self.encode_fixed(torch.cat(blocks, dim=-1))
        if self.value_context is not None:
            value_ctx = self.value_context(prev_deployment.float())
        else:
            value_ctx = torch.zeros_like(fixed)
        hidden = torch.zeros(fixed.shape, dtype=torch.float32, device=fixed.device)
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
        actions, masks, actives, logps, states = [], [], [], [], []
        for step in range(n_services + int(self.stop_action)):
            service_mask = self.service_mask(chosen, storage_bytes, model_bytes)
            active = ~ended & service_mask.any(-1)
            if step > 0 and not active.any():
                break
            hidden, logits = self._step(fixed, chosen, storage_bytes, model_bytes, hidden)
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
            states.append(hidden)
        active_all = torch.stack(actives, 1)
        value_w = self._value_weights(active_all)
        value_seq = self._step_values(torch.stack(states, 1), value_ctx.unsqueeze(1))
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
        """Re-run the GRU on the stored sequence: (log π(M) eq. 30, mean step entropy, V(M) eq. 29).

        Teacher forcing: x^st before step n is the union of the services picked at active steps < n,
        so every step's input is known up front: the input projection and the heads run once over all
        steps, and only the recurrence loops.
        """
        fixed, value_ctx, hidden = self._prepare(demand, prev_deployment, storage_bytes, model_bytes)
        steps = int(active.any(0).nonzero().max().item()) + 1 if active.any() else 1
        actions, step_masks, active = actions[:, :steps], step_masks[:, :steps], active[:, :steps]
        n_services = self.num_services
        picked = active & (actions < n_services)
        one_hot = torch.nn.functional.one_hot(actions.clamp(max=n_services - 1), n_services)
        one_hot = one_hot * picked.unsqueeze(-1)
        chosen = (one_hot.cumsum(1) - one_hot).bool()                       # x^st before step n
        x = self._inputs(fixed.unsqueeze(1), chosen, storage_bytes.unsqueeze(-1), model_bytes)
        gates_x = self.gru_input(x)                                          # all steps at once
        states = []
        for gates_step in gates_x.unbind(1):       # unbind: one backward for all steps, not L zero-fills
            hidden = self._recur(gates_step, hidden)
            states.append(hidden)
        states = torch.stack(states, 1)
        logits, values = self.policy_head(states), self._step_values(states, value_ctx.unsqueeze(1))
        logp, entropy = categorical_logp_entropy(logits, step_masks, actions)
        zero = torch.zeros_like(logp)
        logp, entropy = torch.where(active, logp, zero), torch.where(active, entropy, zero)
        value_w = self._value_weights(active)
        value = (values * value_w).sum(1) / value_w.sum(1)
        entropy = entropy.sum(1) / active.sum(1).clamp(min=1)
        return logp.sum(1), entropy, value
