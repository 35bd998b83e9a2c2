"""The square-root allocation the learned allocation corrects: ``optimizer.baselines.sqrt_shares``
where main has it; until then this stand-in with the same signature and formula (issue 9, item 4):
per server j, compute share ∝ √(D^in_k Ω^E_k), bandwidth share ∝ √(D^in_k D^up_k / η_k) with η_k the
spectral efficiency log2(1 + SNR_k) of the user at the server's full band; equal share where every
weight of a server is 0."""

from __future__ import annotations

import torch

try:                                                    # pragma: no cover - depends on main's state
    from optimizer.baselines import sqrt_shares
except ImportError:                                     # pragma: no cover
    from optimizer.env import channel

    def sqrt_shares(env, server: torch.Tensor, split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, J, K, I, Z = env.dims
        c = env.catalog
        service = env.request_service
        batch = env.request_batch.float()
        work = c.server_work.reshape(-1).index_select(0, (service * Z + split).reshape(-1)).view(B, K)
        up = c.uplink_bytes.reshape(-1).index_select(0, (service * Z + split).reshape(-1)).view(B, K)
        gain = env.channel_gain.gather(1, server.unsqueeze(1)).squeeze(1)
        band = env.server_bandwidth_hz.gather(1, server)
        noise = channel.noise_w_per_hz(env.cfg.channel)
        eta = channel.shannon_rate_bps(band, env.user_power_w, gain, noise) / band
        assoc = env.association(server).float()                            # (B, J, K)
        compute = (batch * work).clamp_min(0).sqrt().unsqueeze(1) * assoc
        bandwidth = (batch * up / eta.clamp_min(1e-12)).clamp_min(0).sqrt().unsqueeze(1) * assoc

        def normalise(w: torch.Tensor) -> torch.Tensor:
            total = w.sum(-1, keepdim=True)
            equal = assoc / assoc.sum(-1, keepdim=True).clamp_min(1.0)
            return torch.where(total > 0, w / total.clamp_min(1e-30), equal)

        return normalise(compute), normalise(bandwidth)

__all__ = ["sqrt_shares"]
