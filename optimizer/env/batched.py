"""EdgeEnv: B independent copies of the edge-device collaborative inference CMDP as torch tensors.

One slot: (every ΔT slots) ``deploy`` → ``user_observation`` → user actions → ``allocation_observation``
→ allocation actions → ``step``. ``step`` evaluates eq. 4–12 and 22–27 for every user of every copy at
once (no Python loop over users or copies), updates the users' LRU parameter caches, then draws the
next slot's requests and channel. Randomness is counter-based (:mod:`optimizer.env.rng`): copy b with
seed s is identical whatever B is and whichever device runs it (up to float rounding).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from optimizer.config import EnvConfig
from optimizer.env import channel, rng
from optimizer.env import system_model as sm
from optimizer.env.catalog import ServiceCatalog
from optimizer.env.layout import DeploymentLayout, UserLocalLayout
from optimizer.env.metrics import request_charged_cost, slot_metrics
from optimizer.env.observations import AllocObs, DeploymentObs, RequestLoads, StepResult, UserObs

_RESET, _SLOT = 1, 2


class _ChoiceRows(NamedTuple):
    """Per choice: D^U(z), Ω^U, Ω^E, D^up, Lea, D_raw, Δacc (the columns of ``_split_table``), and D^U not
    cached."""
    device_param_bytes: torch.Tensor
    device_work: torch.Tensor
    server_work: torch.Tensor
    uplink_bytes: torch.Tensor
    leakage: torch.Tensor
    raw_input_bytes: torch.Tensor
    accuracy_drop: torch.Tensor
    download_bytes: torch.Tensor


class EdgeEnv:
    """Batched environment; see :mod:`optimizer.env` for the interface."""

    def __init__(self, cfg: EnvConfig, catalog: ServiceCatalog, num_envs: int = 1,
                 device: str | torch.device = "cpu", seed: int | Sequence[int] = 0,
                 validate_actions: bool = True) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if catalog.compute_unit != cfg.compute_unit:
            raise ValueError(f"catalog counts {catalog.compute_unit}, config asks for {cfg.compute_unit}")
        self.cfg, self.device = cfg, torch.device(device)
        self.catalog = catalog.to(self.device)
        self.num_envs, self.validate_actions = num_envs, validate_actions
        self._episode, self.t = -1, 0
        self._set_seed(seed)
        c = self.catalog
        self.leakage = sm.effective_leakage(c.leakage, c.leakage_floor, c.choice_split, c.num_splits,
                                            cfg.cost.leakage_measure)
        drop = c.accuracy_drop if c.has_defenses else torch.zeros_like(c.leakage)
        # (I·Z, 7): D^U, Ω^U, Ω^E, D^up, Lea, D_raw, Δacc per (service, column), one gather per step
        self._split_table = torch.stack([c.device_param_bytes, c.device_work, c.server_work, c.uplink_bytes,
                                         self.leakage, c.raw_input_bytes.unsqueeze(1).expand_as(c.leakage), drop],
                                        dim=-1).reshape(-1, 7)
        # with defenses, C^fail bounds every column of the service: its largest Δacc and work Ω^U + Ω^E
        valid = c.split_valid
        self._worst_drop = torch.where(valid, drop, torch.zeros_like(drop)).amax(-1)
        self._model_work = torch.where(valid, c.device_work + c.server_work,
                                       torch.zeros_like(drop)).amax(-1)
        self._has_options = c.defended.any(-1)
        self._noise = channel.noise_w_per_hz(cfg.channel)
        self._server_xy = channel.server_grid_m(cfg.num_servers, cfg.area_m).to(self.device)
        ranks = torch.arange(1, c.num_services + 1, dtype=torch.float64, device=self.device)
        zipf = ranks.pow(-cfg.zipf_s)
        self._zipf_cdf = (zipf.cumsum(0) / zipf.sum()).to(torch.float32)
        self._zipf_cdf[-1] = 1.0
        self._arange_j = torch.arange(cfg.num_servers, device=self.device).view(1, -1, 1)
        self.truncated_flag = False

    # ------------------------------------------------------------------ shape and seeding
    @property
    def dims(self) -> tuple[int, int, int, int, int]:
        """(B, J, K, I, Z)."""
        return (self.num_envs, self.cfg.num_servers, self.cfg.num_users, self.catalog.num_services,
                self.catalog.max_splits)

    @property
    def episode(self) -> int:
        """Episodes reset since the last seeding (−1 before the first reset)."""
        return self._episode

    @property
    def deployment_due(self) -> bool:
        return self.t % self.cfg.delta_t == 0

    def _set_seed(self, seed: int | Sequence[int]) -> None:
        """int s: copy b gets key mix(key(s), b). Sequence: copy b gets key(seed[b]) (B singles with
        seeds [s_b] equal one batched env with seeds [s_0 … s_{B−1}])."""
        if isinstance(seed, int):
            base = rng.copy_keys(torch.tensor([seed], device=self.device))
            self._keys = rng.mix(base.expand(self.num_envs),
                                 torch.arange(self.num_envs, device=self.device))
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds given for {self.num_envs} copies")
            self._keys = rng.copy_keys(torch.tensor(list(seed), device=self.device))

    def _uniform(self, purpose: int, n: int, slot: int = 0) -> torch.Tensor:
        key = rng.mix(rng.mix(rng.mix(self._keys, self._episode), purpose), slot)
        return rng.uniform(key, n)

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | Sequence[int] | None = None) -> None:
        """New geometry and capacities per copy, empty deployment and caches, requests of slot 0."""
        if seed is not None:
            self._set_seed(seed)
            self._episode = 0
        else:
            self._episode += 1
        cfg, cap = self.cfg, self.cfg.capacity
        B, J, K, I, _ = self.dims
        u = self._uniform(_RESET, 2 * K + 5 * J + 5 * K + I)
        parts = iter(u.split([2 * K, J, J, J, J, J, K, K, K, K, K, I], dim=1))

        def draw(rng_range: tuple[float, float]) -> torch.Tensor:
            low, high = rng_range
            return low + next(parts) * (high - low)

        self.user_xy = next(parts).view(B, K, 2) * cfg.area_m
        self.server_power_w = channel.dbm_to_watt(draw(cfg.channel.server_power_dbm))
        self.server_flops = draw(cap.server_flops)
        self.server_storage_bytes = draw(cap.server_storage_bytes)
        self.server_bandwidth_hz = draw(cap.server_bandwidth_hz)
        self.cloud_rate_bps = draw(cap.cloud_rate_bps)
        self.user_power_w = channel.dbm_to_watt(draw(cfg.channel.user_power_dbm))
        self.user_flops = draw(cap.user_flops)
        self.user_storage_bytes = draw(cap.user_storage_bytes)
        self.energy_j_per_flop = draw(cap.energy_j_per_flop)
        self.privacy_pref = draw(cap.privacy_preference)
        self.popularity_order = next(parts).argsort(dim=1)         # (B, I): service of each Zipf rank
        distance = torch.cdist(self._server_xy.expand(B, J, 2), self.user_xy,
                               compute_mode="donot_use_mm_for_euclid_dist")   # (B, J, K), exact
        self._mean_loss_db = channel.path_loss_db(distance, torch.zeros_like(distance), cfg.channel)
        f32 = dict(device=self.device, dtype=torch.float32)
        self.deployment = torch.zeros(B, J, I, dtype=torch.bool, device=self.device)
        self.cache_bytes = torch.zeros(B, K, I, **f32)
        self.cache_last_used = torch.full((B, K, I), -1, dtype=torch.long, device=self.device)
        self.last_request_slot = torch.full((B, J, I), -1, dtype=torch.long, device=self.device)
        self._period_hits = torch.zeros(B, J, **f32)
        self._period_migration_s = torch.zeros(B, J, **f32)
        self._period_requests = torch.zeros(B, J * I, **f32)
        self.last_period_requests = torch.zeros(B, J, I, **f32)   # h_j of the last closed period
        self.t, self.truncated_flag = 0, False
        self._draw_slot()

    def _draw_slot(self) -> None:
        """Requests Req_k = (i, D^in) of slot t (Zipf over a per-copy popularity order) and channel."""
        B, J, K, I, _ = self.dims
        low, high = self.cfg.input_batch
        u = self._uniform(_SLOT, 2 * K + J * K, self.t)
        u_req, u_in, u_shadow = u.split([K, K, J * K], dim=1)
        u_req = u_req.contiguous()
        rank = torch.searchsorted(self._zipf_cdf, u_req).clamp_max(I - 1)
        self.request_service = self.popularity_order.gather(1, rank)
        self.request_batch = low + (u_in * (high - low + 1)).long().clamp_max(high - low)
        shadow = rng.normal(u_shadow).view(B, J, K) * self.cfg.channel.shadowing_std_db
        self.channel_gain = channel.gain_from_db(self._mean_loss_db + shadow)   # (B, J, K)

    # ------------------------------------------------------------------ observation layouts
    @property
    def user_local_layout(self) -> UserLocalLayout:
        """Named column blocks of ``UserObs.local`` (eq. 16)."""
        low, high = self.cfg.input_batch
        return UserLocalLayout.of(self.catalog.num_services, high - low + 1, self.cfg.num_servers,
                                  self.cfg.observe_channel)

    @property
    def deployment_layout(self) -> DeploymentLayout:
        """Named column blocks of ``DeploymentObs.local`` / ``.glob`` (eq. 14, 15)."""
        return DeploymentLayout.of(self.catalog.num_services, self.cfg.num_servers)

    # ------------------------------------------------------------------ deployment layer
    def deployment_observation(self) -> DeploymentObs:
        B, J, K, I, _ = self.dims
        per_server = self.last_period_requests
        total = per_server.sum((1, 2), keepdim=True).clamp_min(1.0)
        h = per_server / total
        r = h.sum(1, keepdim=True).expand(B, J, I)
        local = torch.cat([r, h, torch.zeros_like(h)], dim=-1)
        glob = torch.cat([local, self.deployment.reshape(B, 1, J * I).expand(B, J, J * I).float()], -1)
        fit = self.catalog.model_bytes <= self.server_storage_bytes.unsqueeze(-1)
        return DeploymentObs(local=local, glob=glob, storage_bytes=self.server_storage_bytes,
                             model_bytes=self.catalog.model_bytes, fit_mask=fit)

    def deploy(self, x: torch.Tensor) -> None:
        """Set X (B, J, I) bool; C7 must hold. Records C^mig (eq. 23) for this ΔT period."""
        x = x.to(device=self.device, dtype=torch.bool)
        if x.shape != self.deployment.shape:
            raise ValueError(f"deployment must have shape {tuple(self.deployment.shape)}, got {tuple(x.shape)}")
        used = (x * self.catalog.model_bytes).sum(-1)
        if (used > self.server_storage_bytes * (1 + 1e-6)).any():
            raise ValueError("deployment breaks C7: Σ_i x_ij D_i exceeds S_j on some server")
        self._period_migration_s += sm.migration_cost_s(x, self.deployment, self.catalog.model_bytes,
                                                        self.cloud_rate_bps)
        self.deployment = x.clone()

    # ------------------------------------------------------------------ user layer
    def user_observation(self) -> UserObs:
        cfg = self.cfg
        B, J, K, I, Z = self.dims
        service = self.request_service
        hosting = self.deployment.gather(2, service.unsqueeze(1).expand(B, J, K)).transpose(1, 2)  # (B,K,J)
        if cfg.mask_servers_without_service:
            server_mask = hosting | ~hosting.any(-1, keepdim=True)
        else:
            server_mask = torch.ones_like(hosting)
        split_mask = self.catalog.split_valid.index_select(0, service.reshape(-1)).view(B, K, Z)
        state = (service, self.request_batch, self.deployment, self.channel_gain)
        return UserObs(model=service, input_size=self.request_batch, server_mask=server_mask.contiguous(),
                       split_mask=split_mask, build_local=lambda: self._user_local(*state),
                       build_glob=lambda: self._user_glob(*state[:3]))

    def _user_local(self, service: torch.Tensor, batch: torch.Tensor, deployment: torch.Tensor,
                    gain: torch.Tensor) -> torch.Tensor:
        """Eq. 16 (+ channel features), see :class:`UserObs`."""
        B, J, K, I, _ = self.dims
        low, high = self.cfg.input_batch
        pieces = [torch.nn.functional.one_hot(service, I).float(),
                  torch.nn.functional.one_hot(batch - low, high - low + 1).float(),
                  deployment.reshape(B, 1, J * I).float().expand(B, K, J * I)]
        if self.cfg.observe_channel:
            pieces.append((10.0 * torch.log10(gain.transpose(1, 2)) + 110.0) / 20.0)
        return torch.cat(pieces, dim=-1)

    def _user_glob(self, service: torch.Tensor, batch: torch.Tensor, deployment: torch.Tensor) -> torch.Tensor:
        """Eq. 17, see :class:`UserObs`."""
        B, J, K, I, _ = self.dims
        return torch.cat([service.float() / max(I - 1, 1), batch.float() / self.cfg.input_batch[1],
                          deployment.reshape(B, J * I).float()], dim=-1)

    # ------------------------------------------------------------------ allocation layer
    def association(self, server: torch.Tensor) -> torch.Tensor:
        """y (B, J, K) bool from the chosen server index per user (C4 holds by construction)."""
        return server.unsqueeze(1) == self._arange_j

    def allocation_observation(self, server: torch.Tensor, split: torch.Tensor) -> AllocObs:
        B, J, K, I, Z = self.dims
        assoc = self.association(server)
        feats = torch.stack([self.request_service.float() / max(I - 1, 1),
                             self.request_batch.float() / self.cfg.input_batch[1],
                             split.float() / max(Z - 1, 1)], dim=-1)          # (B, K, 3)
        return AllocObs(tokens=feats.unsqueeze(1) * assoc.unsqueeze(-1), assoc_mask=assoc, server=server,
                        split=split)

    @staticmethod
    def normalise_shares(share: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
        """Zero the shares of unassociated users, clamp at 0, rescale servers whose sum exceeds 1 (C5–C6)."""
        share = share.clamp_min(0.0) * assoc
        return share / share.sum(-1, keepdim=True).clamp_min(1.0)

    # ------------------------------------------------------------------ step
    def _check(self, server: torch.Tensor, split: torch.Tensor) -> None:
        B, J, K, _, _ = self.dims
        if server.shape != (B, K) or split.shape != (B, K):
            raise ValueError(f"server and split must have shape {(B, K)}, got {tuple(server.shape)}, "
                             f"{tuple(split.shape)}")
        Z = self.dims[4]
        inside = (split >= 0) & (split < Z)
        column = (self.request_service * Z + split.clamp(0, Z - 1)).view(-1)
        valid = inside & self.catalog.split_valid.view(-1).gather(0, column).view(B, K)
        if ((server < 0) | (server >= J) | ~valid).any():
            raise ValueError("server outside 0..J-1 or split outside 0..L_i (or the defense options) of the "
                             "requested service")

    def step(self, server: torch.Tensor, split: torch.Tensor, compute_share: torch.Tensor,
             bandwidth_share: torch.Tensor) -> StepResult:
        if self.truncated_flag:
            raise RuntimeError("episode ended (truncated); call reset() first")
        if self.validate_actions:
            self._check(server, split)
        cfg = self.cfg
        B, J, K, I, Z = self.dims
        service, batch = self.request_service, self.request_batch.float()
        assoc = self.association(server)
        out, need_bytes, hosted = self._outcome(server, split, *self._user_shares(server, compute_share,
                                                                                   bandwidth_share))
        served = out.served
        self._update_cache(service, need_bytes, hosted)     # a time-out downloaded its layers too
        # deployment bookkeeping: hits (eq. 22), requests per (server, service), recency for LRU
        self._period_hits += (assoc & hosted.unsqueeze(1)).sum(-1)
        req_index = server * I + service
        self._period_requests.scatter_add_(1, req_index, torch.ones_like(batch))
        self.last_request_slot.view(B, J * I).scatter_(1, req_index, torch.full_like(server, self.t))
        closes = (self.t + 1) % cfg.delta_t == 0 or self.t + 1 == cfg.slots_per_episode
        if closes:
            dep_reward = sm.deployment_reward(self._period_hits, self._period_migration_s, cfg.reward)
            self.last_period_requests = self._period_requests.view(B, J, I).clone()
            self._period_hits.zero_()
            self._period_migration_s.zero_()
            self._period_requests.zero_()
        else:
            dep_reward = torch.zeros(B, J, device=self.device)
        ran = self.catalog.choice_split.view(-1).gather(0, (service * Z + split).view(-1)).view(B, K)
        depth = ran.float() / self.catalog.num_splits.gather(0, service.view(-1)).view(B, K).clamp_min(1)
        charged = request_charged_cost(out, cfg.cost)
        metrics = slot_metrics(out, depth, cfg.cost, charged)
        result = StepResult(
            user_reward=sm.user_reward(out.privacy, out.energy_j, out.delay_s, served, cfg.cost, cfg.reward,
                                       out.accuracy_cost if self.catalog.has_defenses else None),
            user_cost=out.delay_s, alloc_reward=sm.allocation_reward(out.delay_s, assoc), dep_reward=dep_reward,
            truncated=torch.full((B,), self.t + 1 == cfg.slots_per_episode, device=self.device),
            served=served, timed_out=out.timed_out, metrics=metrics, charged_cost=charged)
        self.t += 1
        if self.t == cfg.slots_per_episode:
            self.truncated_flag = True
        # Draw slot t's requests and channel even at truncation: the critic bootstraps from V(o_T),
        # not from the last slot's observation (the counter-based RNG keeps every other draw as is).
        self._draw_slot()
        return result

    def _held_bytes(self) -> torch.Tensor:
        """(B, K): bytes of the requested service's parameters each user's cache holds."""
        return self.cache_bytes.gather(2, self.request_service.unsqueeze(-1)).squeeze(-1)

    def _choice_rows(self, service: torch.Tensor, split: torch.Tensor, held: torch.Tensor) -> _ChoiceRows:
        """The profile rows of each (service, split) choice and what must be downloaded beyond the cache."""
        Z = self.dims[4]
        rows = self._split_table.index_select(0, (service * Z + split).reshape(-1)).view(*split.shape, 7)
        need = rows[..., 0]
        download = (need - held).clamp_min(0.0) if self.cfg.user_cache else need
        return _ChoiceRows(*rows.unbind(-1), download_bytes=download)

    def _outcome(self, server: torch.Tensor, split: torch.Tensor, f_share: torch.Tensor,
                 b_share: torch.Tensor) -> tuple[sm.UserOutcome, torch.Tensor, torch.Tensor]:
        """Eq. 4–10 for choices of shape (B, K) or (B, K, C) (C candidates per user) given the user's
        compute and bandwidth shares of its server; returns (outcome, D^U(z) needed, hosted)."""
        B, J, K, I, Z = self.dims
        extra = server.dim() == 3
        service = self.request_service.unsqueeze(-1) if extra else self.request_service
        batch = self.request_batch.float().unsqueeze(-1) if extra else self.request_batch.float()
        per_user = (lambda v: v.unsqueeze(-1)) if extra else (lambda v: v)
        flat_srv = server.reshape(B, -1)

        def pick(per_server: torch.Tensor) -> torch.Tensor:      # (B, J) → shape of server
            return per_server.gather(1, flat_srv).view_as(server)

        if extra:
            gain = self.channel_gain.transpose(1, 2).gather(2, server)
        else:
            gain = self.channel_gain.gather(1, server.unsqueeze(1)).squeeze(1)
        rows = self._choice_rows(service, split, per_user(self._held_bytes()))
        need_bytes, dev_work, srv_work, up_bytes, leakage, raw_bytes, drop, download = rows
        defended = {}
        if self.catalog.has_defenses:
            per_service = lambda v: v.gather(0, service.reshape(-1)).view_as(service)  # noqa: E731
            work = torch.where(per_service(self._has_options), per_service(self._model_work), dev_work + srv_work)
            defended = dict(accuracy_drop=drop, worst_accuracy_drop=per_service(self._worst_drop), model_work=work)
        hosted = self.deployment.view(B, J * I).gather(1, (server * I + service).reshape(B, -1)).view_as(server)
        bandwidth = b_share * pick(self.server_bandwidth_hz)
        out = sm.user_outcome(
            input_batch=batch, download_bytes=download, device_work=dev_work, server_work=srv_work,
            uplink_bytes=up_bytes, leakage=leakage, raw_input_bytes=raw_bytes, hosted=hosted,
            user_flops=per_user(self.user_flops), allocated_flops=f_share * pick(self.server_flops),
            downlink_bps=channel.shannon_rate_bps(bandwidth, pick(self.server_power_w), gain, self._noise),
            uplink_bps=channel.shannon_rate_bps(bandwidth, per_user(self.user_power_w), gain, self._noise),
            user_power_w=per_user(self.user_power_w), energy_j_per_flop=per_user(self.energy_j_per_flop),
            privacy_pref=per_user(self.privacy_pref), cost=self.cfg.cost, tau_fail_s=self.cfg.reward.tau_fail_s,
            **defended)
        return out, need_bytes, hosted

    def outcome(self, server: torch.Tensor, split: torch.Tensor, compute_share: torch.Tensor,
                bandwidth_share: torch.Tensor) -> sm.UserOutcome:
        """What :meth:`step` would give for these actions (B, K) and shares (B, J, K); changes nothing."""
        return self._outcome(server, split, *self._user_shares(server, compute_share, bandwidth_share))[0]

    def _user_shares(self, server: torch.Tensor, compute_share: torch.Tensor,
                     bandwidth_share: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's (B, K) share of its server's compute and bandwidth after C5–C6."""
        assoc, srv = self.association(server), server.unsqueeze(1)
        return (self.normalise_shares(compute_share, assoc).gather(1, srv).squeeze(1),
                self.normalise_shares(bandwidth_share, assoc).gather(1, srv).squeeze(1))

    def request_loads(self, server: torch.Tensor, split: torch.Tensor) -> RequestLoads:
        """Each user's load on its server for choices (B, K), and the spectral efficiencies of its links
        at an equal share B_j / n_j of the server's bandwidth (the operating point of the closed-form
        allocation). Reads the current slot; changes nothing."""
        rows = self._choice_rows(self.request_service, split, self._held_bytes())
        n = self.association(server).sum(-1).clamp_min(1).float()                # (B, J)
        bandwidth = (self.server_bandwidth_hz / n).gather(1, server)
        gain = self.channel_gain.gather(1, server.unsqueeze(1)).squeeze(1)
        server_power = self.server_power_w.gather(1, server)
        ones = torch.ones_like(bandwidth)
        down_se = channel.shannon_rate_bps(bandwidth, server_power, gain, self._noise) / bandwidth
        up_se = channel.shannon_rate_bps(bandwidth, self.user_power_w, gain, self._noise) / bandwidth
        return RequestLoads(input_batch=self.request_batch.float(), download_bytes=rows.download_bytes,
                            server_work=rows.server_work, uplink_bytes=rows.uplink_bytes, downlink_se=torch.where(bandwidth > 0, down_se, 0 * ones),
                            uplink_se=torch.where(bandwidth > 0, up_se, 0 * ones))

    def estimate_outcome(self, server: torch.Tensor, split: torch.Tensor, users_per_server: torch.Tensor,
                         current_server: torch.Tensor | None = None) -> sm.UserOutcome:
        """What each user would get from candidate choices server, split (B, K, C) under an equal
        share 1 / n of its server's compute and bandwidth, n = users_per_server[j] (B, J), plus one
        when ``current_server`` (B, K) is given and differs from the candidate (the user would join).
        Reads the current slot (requests, channel, deployment, caches); changes nothing."""
        count = users_per_server.gather(1, server.reshape(server.shape[0], -1)).view_as(server).float()
        if current_server is not None:
            count = count + (server != current_server.unsqueeze(-1)).float()
        share = 1.0 / count.clamp_min(1.0)
        return self._outcome(server, split, share, share)[0]

    def _update_cache(self, service: torch.Tensor, need_bytes: torch.Tensor, ran: torch.Tensor) -> None:
        """LRU cache of device-side parameters: a user whose model ran (served or timed out) keeps
        max(held, D^U(z)) of its service, then least recently used entries are evicted until
        Σ_i held ≤ user storage."""
        if not self.cfg.user_cache:
            return
        idx = service.unsqueeze(-1)
        held = self.cache_bytes.gather(2, idx).squeeze(-1)
        new = torch.where(ran, torch.maximum(held, need_bytes), held)
        self.cache_bytes.scatter_(2, idx, new.unsqueeze(-1))
        stamp = torch.where(ran, torch.full_like(service, self.t),
                            self.cache_last_used.gather(2, idx).squeeze(-1))
        self.cache_last_used.scatter_(2, idx, stamp.unsqueeze(-1))
        over = self.cache_bytes.sum(-1) > self.user_storage_bytes
        if not bool(over.any()):
            return
        b, k = over.nonzero(as_tuple=True)
        size, last = self.cache_bytes[b, k], self.cache_last_used[b, k]     # (n, I)
        order = last.argsort(dim=-1, descending=True, stable=True)          # most recent first
        keep_sorted = size.gather(1, order).cumsum(-1) <= self.user_storage_bytes[b, k].unsqueeze(-1)
        keep = torch.empty_like(keep_sorted).scatter_(1, order, keep_sorted)
        self.cache_bytes[b, k] = size * keep
        self.cache_last_used[b, k] = torch.where(keep, last, torch.full_like(last, -1))
