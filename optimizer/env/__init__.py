"""The CMDP environment of edge-device collaborative inference (paper Sec. III, IV-A). This docstring is
the interface between the environment and its learners (the trainer, the heuristics, evaluate).

B = num_envs, J servers, K users, I services, Z = 1 + max_i L_i (split points 0..L_i padded to Z;
padded entries masked out). All tensors live on ``env.device``.

    from optimizer.config import EnvConfig
    from optimizer.env import EdgeEnv, ServiceCatalog
    catalog = ServiceCatalog.from_profiles("data/profiles", cfg.services_per_model, cfg.compute_unit)
    env = EdgeEnv(cfg, catalog, num_envs=B, device="cpu", seed=0)   # seed: int, or one int per copy
    env.reset(seed=None)          # new geometry/capacities, empty deployment and caches, slot-0
                                  # requests; env.t = 0. reset() without seed = next episode.
    env.dims -> (B, J, K, I, Z);  env.deployment_due -> bool (env.t % cfg.delta_t == 0)

Deployment layer (when due, before the slot's user step):
    obs = env.deployment_observation()      # DeploymentObs: .local (B,J,3I) eq. 14, .glob (B,J,3I+J·I)
                                            # eq. 15, .storage_bytes (B,J), .model_bytes (I,),
                                            # .fit_mask (B,J,I) = D_i <= S_j
    deployment_fit_mask(storage, model_bytes, selected) -> (B,J,I) bool   # during auto-regression (C7)
    env.deploy(x: bool (B,J,I))             # raises ValueError if C7 breaks; records C^mig (eq. 23).
                                            # Not calling it keeps the current X (empty at t = 0).
User layer (every slot):
    uo = env.user_observation()             # UserObs: .model (B,K) long, .input_size (B,K) long,
                                            # .local (B,K,d_loc) eq. 16, .glob (B,2K+J·I) eq. 17,
                                            # .server_mask (B,K,J), .split_mask (B,K,Z)
Allocation layer (every slot, after the user actions):
    ao = env.allocation_observation(server (B,K) long, split (B,K) long)   # .tokens (B,J,K,3), .assoc_mask
                                            # (B,J,K), .server/.split (B,K): the choices being served
    res = env.step(server, split, compute_share (B,J,K), bandwidth_share (B,J,K))  -> StepResult
        # shares >= 0; unassociated users' shares ignored, sums > 1 rescaled to 1 (C5, C6);
        # f_{j,k} = share·f_j, B_{j,k} = share·B_j. res.user_reward (B,K) eq. 25, res.user_cost (B,K)
        # τ_k eq. 27, res.alloc_reward (B,J) eq. 26, res.dep_reward (B,J) eq. 24 (non-zero on the
        # slot closing a ΔT period or the episode), res.truncated (B,), res.served (B,K),
        # res.timed_out (B,K) (deployed but τ^succ > τ_fail; neither served nor timed out = a miss),
        # res.metrics: one (B,) tensor per name of optimizer.env.metrics.SLOT_METRICS.
        # After the last slot (cfg.slots_per_episode) step raises until reset().

Details of the contract:
- ``seed`` may be one int or a sequence of per-copy seeds; ``validate_actions=False`` skips the action
  checks. ``env.episode`` counts episodes since the last seeding.
- ``UserObs.local`` appends J channel features (10·log10 g_{j,k} + 110) / 20 when ``cfg.observe_channel``
  (default True): eq. 16 alone gives a user no way to tell servers apart. d_loc = I + n_in + J·I (+ J),
  n_in = high − low + 1 input sizes. vec(X) is server-major (j·I + i). ``UserObs.local`` and ``.glob``
  are built on first access (they are large; masks are always ready).
- eq. 14's r and h_j are shares of the last period's requests (in [0, 1]), not raw counts.
- Public state the heuristics read: ``env.channel_gain`` (B,J,K), ``env.server_flops`` (B,J),
  ``env.server_bandwidth_hz`` (B,J), ``env.request_service``/``request_batch`` (B,K),
  ``env.last_request_slot`` (B,J,I); ``env.normalise_shares(share, assoc)`` applies C5–C6, and
  ``env.estimate_outcome(server (B,K,C), split (B,K,C), users_per_server (B,J), current_server=None)``
  evaluates candidate choices under an equal share without stepping; ``env.outcome(server, split,
  compute_share, bandwidth_share)`` gives what ``step`` would for given shares, and
  ``env.request_loads(server, split)`` each user's load (D^in, D^U to download, Ω^E, D^up) and spectral
  efficiencies at an equal share (``RequestLoads``), both without stepping.
- A user fails on a miss (its service not hosted where it went) or a time-out (τ^succ > τ_fail): τ_k =
  τ_fail and R^fail (eq. 5, 25); what a failure costs in energy and privacy is defined in
  :mod:`optimizer.env.system_model`.

Policy protocol (optimizer.evaluate.run_episodes drives any mix of these):
    DeploymentPolicy.deploy(env, obs: DeploymentObs) -> bool (B,J,I)
    UserPolicy.act(env, obs: UserObs) -> (server (B,K) long, split (B,K) long)
    AllocationPolicy.allocate(env, obs: AllocObs) -> (compute_share (B,J,K), bandwidth_share (B,J,K))
"""

from optimizer.env.batched import EdgeEnv
from optimizer.env.catalog import ServiceCatalog
from optimizer.env.observations import (AllocObs, DeploymentObs, RequestLoads, StepResult, UserObs,
                                        deployment_fit_mask)

__all__ = ["EdgeEnv", "ServiceCatalog", "AllocObs", "DeploymentObs", "RequestLoads", "StepResult", "UserObs",
           "deployment_fit_mask"]
