"""The in-turn deployment layer: storage always respected, the per-step log-probs are those of the
sampled sequence, and greedy decoding of two identical servers does not collapse onto one set.

Collapse case: two identical servers, four equal services, each server holds exactly two.
A shared policy that decides both servers from the same observation puts the same two services on
both when decoded greedily (coverage 1/2). Trained by the trainer's own PPO routine on the team
reward "share of services covered", the in-turn policy's greedy decoding must cover all four.
"""

from __future__ import annotations

import torch

from optimizer.algos.layers import InTurnDeploymentLayer
from optimizer.algos.ppo import PPOSettings, ppo_update, standardise
from optimizer.policies.deployment_in_turn import (DeploymentState, InTurnDeployment, eligible, fill_in_order,
                                                   step_masks)


def _state(B: int, J: int = 2, I: int = 4, storage: float = 2.0) -> DeploymentState:
    return DeploymentState(request_share=torch.full((B, I), 1.0 / I),
                           server_share=torch.full((B, J, I), 1.0 / (I * J)),
                           previous=torch.zeros(B, J, I, dtype=torch.bool),
                           storage_bytes=torch.full((B, J), storage), model_bytes=torch.ones(I))


def test_fill_in_order_skips_what_no_longer_fits():
    keys = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    chosen, picks, count = fill_in_order(keys, torch.tensor([5.0]), torch.tensor([3.0, 3.0, 1.0, 1.0]))
    assert chosen.tolist() == [[True, False, True, True]]          # 3 taken, 3 skipped, 1, 1
    assert picks[0, :3].tolist() == [0, 2, 3] and count.tolist() == [3]
    assert eligible(chosen, torch.tensor([5.0]), torch.tensor([3.0, 3.0, 1.0, 1.0])).sum() == 0


def test_sampled_deployments_fit_and_stored_logp_is_recomputed_exactly():
    torch.manual_seed(0)
    net = InTurnDeployment(num_services=6, num_servers=3, hidden=16)
    state = DeploymentState(request_share=torch.rand(5, 6), server_share=torch.rand(5, 3, 6) / 18,
                            previous=torch.rand(5, 3, 6) > 0.5, storage_bytes=torch.rand(5, 3) * 4 + 1,
                            model_bytes=torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5, 0.25]))
    sample = net.act(state)
    used = (sample.deployment * state.model_bytes).sum(-1)
    assert (used <= state.storage_bytes).all()
    # nothing eligible is left out: decoding stops only when no further service fits (as eq. 19)
    assert not eligible(sample.deployment, state.storage_bytes, state.model_bytes).any()
    logp, entropy, value = net.evaluate(state, sample.deployment, sample.actions, sample.active)
    assert torch.allclose(logp, sample.logp, atol=1e-6) and value.shape == (5, 3)
    assert (logp[~sample.active] == 0).all() and (entropy >= 0).all()
    # the eligible sets given precomputed (as the update and the warm start pass them) change nothing
    masks = step_masks(sample.actions, sample.active, state.storage_bytes, state.model_bytes)
    given = net.evaluate(state, sample.deployment, sample.actions, sample.active, masks)
    assert all(torch.equal(a, b) for a, b in zip(given, (logp, entropy, value)))
    assert torch.equal(net.step_logp(state, sample.deployment, sample.actions, sample.active, masks), logp)


def test_greedy_decoding_of_two_identical_servers_covers_every_service():
    torch.manual_seed(0)
    B, I = 32, 4
    net = InTurnDeployment(num_services=I, num_servers=2, hidden=32)
    layer = InTurnDeploymentLayer(net, torch.ones(I))
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    settings = PPOSettings(epochs=4, num_minibatches=2, clip=0.2, entropy_coef=0.0, value_coef=0.5,
                           max_grad_norm=0.5)
    generator = torch.Generator().manual_seed(0)
    state = _state(B)
    for _ in range(60):
        sample = net.act(state)
        coverage = sample.deployment.any(1).float().mean(-1)                  # team reward (B,)
        advantage = standardise(coverage).unsqueeze(-1).expand(B, 2)
        pad = I - sample.actions.shape[-1]
        active = torch.nn.functional.pad(sample.active, (0, pad))
        samples = dict(request_share=state.request_share, server_share=state.server_share,
                       previous=state.previous, storage=state.storage_bytes, deployment=sample.deployment,
                       actions=torch.nn.functional.pad(sample.actions, (0, pad)), active=active,
                       logp_old=torch.nn.functional.pad(sample.logp, (0, pad)),
                       advantage=advantage.unsqueeze(-1).expand_as(active).contiguous(),
                       weight=active.float(), target_value=coverage.unsqueeze(-1).expand(B, 2))
        ppo_update(samples, layer.forward, [(optimiser, list(net.parameters()))], settings, generator, "dep")
    greedy = net.act(_state(1), deterministic=True).deployment[0]
    assert greedy.sum(-1).tolist() == [2, 2]                                  # each server full
    assert greedy.any(0).all(), f"greedy decoding collapsed: {greedy.int().tolist()}"


def test_fill_in_order_takes_in_key_order_and_skips_only_what_did_not_fit():
    """Random cases: the picks are the chosen services in decreasing key; every service ranked above
    the last pick but not chosen did not fit when its turn came; nothing left over still fits."""
    g = torch.Generator().manual_seed(3)
    for _ in range(200):
        N, I = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g))
        keys = torch.randn(N, I, generator=g).round(decimals=1)             # ties too
        sizes = torch.rand(I, generator=g) * 3
        storage = torch.rand(N, generator=g) * I
        chosen, picks, count = fill_in_order(keys, storage, sizes)
        for n in range(N):
            taken = picks[n, :count[n]].tolist()
            assert sorted(taken) == chosen[n].nonzero().flatten().tolist()
            assert all(keys[n, x] >= keys[n, y] for x, y in zip(taken, taken[1:]))
            used = 0.0
            for service in keys[n].argsort(descending=True, stable=True).tolist():
                fits = used + float(sizes[service]) <= float(storage[n])
                assert fits == (service in taken)
                used += float(sizes[service]) if fits else 0.0
        assert not eligible(chosen, storage, sizes).any()
