"""The three layers as the trainer sees them: how each acts in a rollout (storing what PPO needs),
what its critic bootstraps from, and how its stored samples are re-evaluated at update time.

Every layer turns its :class:`~optimizer.algos.buffers.Trajectory` into flat samples for the one
update routine :func:`optimizer.algos.ppo.ppo_update` (``logp_old``, ``advantage``, ``weight``,
``target_<critic>``, inputs) and gives a ``forward`` that maps a minibatch to a
:class:`~optimizer.algos.ppo.LayerOutput`. Which network plays a layer is a config choice:
deployment ``in-turn`` (coverage-aware, per-step ratios) or ``gru`` (the paper's eq. 28–30);
allocation ``sqrt-correction`` (bounded tilt of the square-root share) or ``attention`` (the paper's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from optimizer.algos.buffers import Trajectory
from optimizer.algos.normalisers import RunningMeanStd
from optimizer.algos.ppo import LayerOutput
from optimizer.policies.allocation import user_tokens
from optimizer.policies.allocation_correction import SqrtCorrectionActor
from optimizer.policies.common import SlotSplit
from optimizer.policies.deployment_in_turn import DeploymentState, InTurnDeployment, step_masks
from optimizer.baselines import channel_server, sqrt_shares


# ------------------------------------------------------------------------------------------- users
OWN_DEVICE_FEATURES = 4


def own_features(env) -> torch.Tensor:
    """What a user knows about itself beyond eq. 16, (B, K, Z + 4): for each split of its request what
    its parameter cache still lacks, log(1 + (D^U(z) − held)+ / 1 MB) / 5, and its own device: log10 ε_k
    (J/FLOP), Pre_k, log10 f_k (FLOP/s), P_k (dBm), each scaled to about [−1, 1]. An extension of eq. 16:
    ε_k alone spans 100× (Table I), and whether a deep split needs a download (τ^E2U) decides whether it
    times out; without them the learned users could only learn the average split (measured: all edge)."""
    B, J, K, I, Z = env.dims
    service = env.request_service
    held = env.cache_bytes.gather(2, service.unsqueeze(-1))                       # (B, K, 1)
    need = env.catalog.device_param_bytes.index_select(0, service.reshape(-1)).view(B, K, Z)
    cache = torch.log1p((need - held).clamp_min(0.0) / 1e6) / 5.0
    device = torch.stack([torch.log10(env.energy_j_per_flop.clamp_min(1e-15)) + 10.0,
                          2.0 * env.privacy_pref - 1.0,
                          2.0 * (torch.log10(env.user_flops.clamp_min(1.0)) - 10.5),
                          (10.0 * torch.log10(env.user_power_w.clamp_min(1e-12)) + 30.0 - 25.0) / 5.0], dim=-1)
    return torch.cat([cache, device.float()], dim=-1)


SPLIT_ESTIMATE_FEATURES = 3


def split_estimates(env, uo) -> torch.Tensor:
    """What each split of its request would cost a user, (B, K, Z·3) split-major: at its strongest-channel
    server among those allowed, with an equal share of a server carrying the average load K / J,
    (μ1 C^priv + a defense option's accuracy cost) / 100 and μ2 e / 100 (eq. 12 cost units) and log(1 + τ / τ̄) (eq. 5–10,
    :meth:`EdgeEnv.estimate_outcome`). Everything in it is the user's own (device, channel, request, cache)
    or public (profile tables, server capacities): not other users' choices. 0 on invalid splits.

    An extension of eq. 16 (README, departures): the paper's users must learn each model's per-split
    privacy and energy from a one-hot of the model; these give the split head the price of every split."""
    B, J, K, _, Z = env.dims
    server = channel_server(env, uo).unsqueeze(-1)                    # (B, K, 1): broadcast over splits
    split = torch.arange(Z, device=server.device).expand(B, K, Z)
    load = torch.full((B, J), K / J, device=server.device)
    est = env.estimate_outcome(server, split, load)
    cost = env.cfg.cost
    feats = torch.stack([(cost.mu1 * est.privacy + est.accuracy_cost) / 100.0, cost.mu2 * est.energy_j / 100.0,
                         torch.log1p(est.delay_s / cost.delay_limit_s)], dim=-1).float()
    feats = torch.nan_to_num(feats, nan=0.0, posinf=10.0, neginf=-10.0).clamp(-10.0, 10.0)
    return torch.where(uo.split_mask.unsqueeze(-1), feats, torch.zeros_like(feats)).flatten(-2)


def user_local(env, uo, observe_own: bool, observe_splits: bool = False) -> torch.Tensor:
    """The user actor's and critics' local input: eq. 16 (+ channel) of the env, + :func:`own_features`,
    + :func:`split_estimates`."""
    parts = [uo.local]
    if observe_own:
        parts.append(own_features(env))
    if observe_splits:
        parts.append(split_estimates(env, uo))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else uo.local


class UserLayer:
    """MAPPO user actor (σ, z) with reward and delay-cost critics (eq. 16, 17, 20, 32).

    The rollout stores each slot's observation as a :class:`SlotSplit` (``local_user`` per user,
    ``local_slot`` = vec(X) once per slot) when the networks know the shared columns."""

    def __init__(self, actor, critics, observe_own: bool = False,
                 shared_cols: tuple[int, int] | None = None, observe_splits: bool = False) -> None:
        self.actor, self.critics, self.observe_own = actor, critics, observe_own
        self.shared_cols, self.observe_splits = shared_cols, observe_splits

    def local(self, env, uo) -> torch.Tensor:
        return user_local(env, uo, self.observe_own, self.observe_splits)

    def stored_form(self, local: torch.Tensor) -> torch.Tensor | SlotSplit:
        """What the rollout keeps of a full local observation (the same values, vec(X) once per slot)."""
        return local if self.shared_cols is None else SlotSplit.of(local, self.shared_cols)

    def act(self, env, uo, traj: Trajectory, t: int):
        local = self.stored_form(self.local(env, uo))
        server, split, logp = self.actor.act(local, uo.server_mask, uo.split_mask)
        traj.put(t, **_local_fields(local), glob=uo.glob, server_mask=uo.server_mask,
                 split_mask=uo.split_mask, server=server, split=split, logp=logp)
        return server, split

    def store_values(self, traj: Trajectory, norm_r: RunningMeanStd, norm_c: RunningMeanStd) -> None:
        """V^R, V^C (raw units) of every stored slot in one pass (the critics do not act)."""
        v_r, v_c = self.critics(_stored_local(traj.data), traj.glob)
        traj.data["value_reward"], traj.data["value_cost"] = norm_r.denormalise(v_r), norm_c.denormalise(v_c)

    def samples(self, traj: Trajectory, advantage: torch.Tensor, target_r: torch.Tensor,
                target_c: torch.Tensor) -> dict[str, torch.Tensor]:
        """One sample per (slot, copy) holding its K users (the critics' global part is per slot)."""
        names = tuple(_local_names(traj.data)) + ("glob", "server_mask", "split_mask", "server", "split")
        out = traj.flat(names, 2)
        out.update(logp_old=traj.logp.flatten(0, 1), advantage=advantage.flatten(0, 1),
                   target_reward=target_r.flatten(0, 1), target_cost=target_c.flatten(0, 1))
        return out

    def forward(self, b: dict[str, torch.Tensor]) -> LayerOutput:
        local = _stored_local(b)
        logp, entropy = self.actor.evaluate(local, b["server_mask"], b["split_mask"], b["server"], b["split"])
        v_r, v_c = self.critics(local, b["glob"])
        return LayerOutput(logp, entropy, {"reward": v_r, "cost": v_c})


def _local_fields(local: torch.Tensor | SlotSplit) -> dict[str, torch.Tensor]:
    if isinstance(local, SlotSplit):
        return {"local_user": local.per_user, "local_slot": local.per_slot}
    return {"local": local}


def _local_names(data: dict[str, torch.Tensor]) -> list[str]:
    return ["local_user", "local_slot"] if "local_user" in data else ["local"]


def _stored_local(data: dict[str, torch.Tensor]) -> torch.Tensor | SlotSplit:
    return SlotSplit(data["local_user"], data["local_slot"]) if "local_user" in data else data["local"]


# -------------------------------------------------------------------------------------- allocation
class AllocationLayer:
    """Per-server allocation: the square-root tilt or the paper's attention Dirichlet (eq. 18, 26)."""

    def __init__(self, actor, critic, num_services: int, max_input_size: int, num_splits: int) -> None:
        self.actor, self.critic = actor, critic
        self.sqrt = isinstance(actor, SqrtCorrectionActor)
        self.token_sizes = (num_services, max_input_size, num_splits)

    def tokens(self, ao) -> torch.Tensor:
        return user_tokens(ao.tokens, *self.token_sizes)

    def act(self, env, ao, server, split, deterministic: bool = False):
        """(shares (B, J, K, 2), stored fields) for the rollout or an evaluation."""
        tokens = self.tokens(ao)
        if self.sqrt:
            base = torch.stack(sqrt_shares(env, server, split), dim=-1)
            shares, action, logp = self.actor.act(tokens, ao.assoc_mask, base, deterministic)
            return shares, dict(tokens=tokens, assoc=ao.assoc_mask, base=base, action=action, logp=logp)
        shares, logp = self.actor.act(tokens, ao.assoc_mask, deterministic)
        return shares, dict(tokens=tokens, assoc=ao.assoc_mask, action=shares, logp=logp)

    def value(self, tokens, assoc) -> torch.Tensor:
        return self.critic(tokens, assoc)

    def samples(self, traj: Trajectory, advantage: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        names = ("tokens", "assoc", "action") + (("base",) if self.sqrt else ())
        out = traj.flat(names, 2)
        # servers with fewer than two users have a point-mass action (log π = 0): no policy gradient
        out.update(logp_old=traj.logp.flatten(0, 1), advantage=advantage.flatten(0, 1),
                   weight=(traj.assoc.sum(-1) >= 2).float().flatten(0, 1), target_value=target.flatten(0, 1))
        return out

    def forward(self, b: dict[str, torch.Tensor]) -> LayerOutput:
        if self.sqrt:
            logp, entropy = self.actor.evaluate(b["tokens"], b["assoc"], b["base"], b["action"])
        else:
            logp, entropy = self.actor.evaluate(b["tokens"], b["assoc"], b["action"])
        return LayerOutput(logp, entropy, {"value": self.critic(b["tokens"], b["assoc"])})


# -------------------------------------------------------------------------------------- deployment
class InTurnDeploymentLayer:
    """Servers decide in turn (:mod:`optimizer.policies.deployment_in_turn`); per-step ratios with the
    decision's advantage, one sample per (decision, copy) holding its J servers."""

    def __init__(self, net: InTurnDeployment, model_bytes: torch.Tensor) -> None:
        self.net, self.model_bytes = net, model_bytes

    def state(self, env, obs) -> DeploymentState:
        layout = env.deployment_layout
        B, J, _, I, _ = env.dims
        previous = obs.glob[:, 0, layout.previous].reshape(B, J, I) > 0.5
        return DeploymentState(obs.local[:, 0, layout.request_share], obs.local[..., layout.server_share],
                               previous, obs.storage_bytes, obs.model_bytes)

    def act(self, env, obs, deterministic: bool = False, generator: torch.Generator | None = None):
        state = self.state(env, obs)
        sample = self.net.act(state, deterministic, generator)
        I = self.net.num_services
        pad = I - sample.actions.shape[-1]
        fields = dict(request_share=state.request_share, server_share=state.server_share,
                      previous=state.previous, storage=state.storage_bytes, deployment=sample.deployment,
                      actions=F.pad(sample.actions, (0, pad)), active=F.pad(sample.active, (0, pad)),
                      logp=F.pad(sample.logp, (0, pad)))
        return sample.deployment, sample.value, fields

    def value(self, env, obs) -> torch.Tensor:
        return self.net.value(self.state(env, obs))

    def store_values(self, traj: Trajectory, norm: RunningMeanStd) -> None:
        """V (raw units) of every stored decision in one pass."""
        b = traj.flat(("request_share", "server_share", "previous", "storage"), 2)
        state = DeploymentState(b["request_share"], b["server_share"], b["previous"], b["storage"],
                                self.model_bytes)
        traj.data["value"] = norm.denormalise(self.net.value(state)).view(traj.storage.shape)

    def samples(self, traj: Trajectory, advantage: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        out = traj.flat(("request_share", "server_share", "previous", "storage", "deployment", "actions"), 2)
        active = traj.active.flatten(0, 1)
        adv = advantage.flatten(0, 1).unsqueeze(-1).expand_as(active)
        out.update(logp_old=traj.logp.flatten(0, 1), advantage=adv.contiguous(), weight=active.float(),
                   active=active, target_value=target.flatten(0, 1),
                   step_masks=step_masks(out["actions"], active, out["storage"], self.model_bytes))
        return out

    def forward(self, b: dict[str, torch.Tensor]) -> LayerOutput:
        state = DeploymentState(b["request_share"], b["server_share"], b["previous"], b["storage"],
                                self.model_bytes)
        logp, entropy, value = self.net.evaluate(state, b["deployment"], b["actions"], b["active"],
                                                 b.get("step_masks"))      # from samples(), else computed
        return LayerOutput(logp, entropy, {"value": value})


class GRUDeploymentLayer:
    """The paper's GRU macro-action (eq. 28–30): one sample per (decision, copy, server), ratio of
    the whole sequence."""

    def __init__(self, net, model_bytes: torch.Tensor) -> None:
        self.net, self.model_bytes = net, model_bytes

    @staticmethod
    def inputs(env, obs):
        B, J, _, I, _ = env.dims
        layout = env.deployment_layout
        demand = torch.cat([obs.local[..., layout.request_share], obs.local[..., layout.server_share]], -1)
        return demand, obs.glob[..., layout.previous]

    def act(self, env, obs, deterministic: bool = False, generator: torch.Generator | None = None):
        B, J, _, I, _ = env.dims
        demand, prev = self.inputs(env, obs)
        sample = self.net.act(demand.reshape(B * J, -1), prev.reshape(B * J, -1),
                              obs.storage_bytes.reshape(B * J), obs.model_bytes, deterministic)
        choices = I + int(self.net.stop_action)
        pad = choices - sample.actions.shape[1]
        fields = dict(demand=demand, prev=prev[:, 0], storage=obs.storage_bytes,
                      actions=F.pad(sample.actions, (0, pad)).view(B, J, choices),
                      step_masks=F.pad(sample.step_masks, (0, 0, 0, pad)).view(B, J, choices, choices),
                      active=F.pad(sample.active, (0, pad)).view(B, J, choices), logp=sample.logp.view(B, J),
                      step_value=sample.value.view(B, J))
        return sample.deployment.view(B, J, I), sample.value.view(B, J), fields

    def value(self, env, obs) -> torch.Tensor:
        return self.act(env, obs)[1]

    def store_values(self, traj: Trajectory, norm: RunningMeanStd) -> None:
        traj.data["value"] = norm.denormalise(traj.step_value)     # the GRU's values come with its steps

    def samples(self, traj: Trajectory, advantage: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        D, B, J = traj.logp.shape
        out = traj.flat(("demand", "storage", "actions", "step_masks", "active"), 3)
        out["prev"] = traj.prev.unsqueeze(2).expand(D, B, J, -1).reshape(D * B * J, -1)
        out.update(logp_old=traj.logp.reshape(-1), advantage=advantage.reshape(-1),
                   target_value=target.reshape(-1))
        return out

    def forward(self, b: dict[str, torch.Tensor]) -> LayerOutput:
        logp, entropy, value = self.net.evaluate(b["demand"], b["prev"], b["storage"], self.model_bytes,
                                                 b["actions"], b["step_masks"], b["active"])
        return LayerOutput(logp, entropy, {"value": value})


def deployment_layer(net, model_bytes: torch.Tensor):
    if net is None:
        return None
    if isinstance(net, InTurnDeployment):
        return InTurnDeploymentLayer(net, model_bytes)
    return GRUDeploymentLayer(net, model_bytes)
