"""Policy networks: masks hold, log-probs at update time equal those at rollout (PPO ratio = 1),
the Dirichlet allocation matches torch.distributions and never produces NaN."""

from __future__ import annotations

import math

import pytest
import torch

from optimizer.policies.allocation import AllocationActor, AllocationCritic, dirichlet_logp_entropy
from optimizer.policies.deployment import DeploymentActorCritic
from optimizer.policies.user import UserActor, UserCritics

GiB = 2 ** 30


def _deployment_case(stop_action: bool, seed: int = 0):
    torch.manual_seed(seed)
    I, J, N = 12, 3, 9
    net = DeploymentActorCritic(I, J, hidden=32, stop_action=stop_action)
    demand = torch.rand(N, 2 * I) / I
    prev = (torch.rand(N, I * J) > 0.5).float()
    storage = torch.tensor([1.0, 2.0, 3.5] * 3) * GiB
    model_bytes = torch.tensor([0.3, 0.5, 0.9, 1.2, 0.1, 0.05, 2.0, 0.7, 0.4, 0.25, 1.6, 0.8]) * GiB
    return net, demand, prev, storage, model_bytes


@pytest.mark.parametrize("stop_action", [False, True])
def test_deployment_respects_storage_and_never_repeats(stop_action):
    net, demand, prev, storage, sizes = _deployment_case(stop_action)
    for _ in range(5):
        sample = net.act(demand, prev, storage, sizes)
        used = (sample.deployment.double() * sizes.double()).sum(-1)
        assert (used <= storage.double()).all()                       # C7
        picked = sample.actions.masked_fill(~sample.active, -1)
        for row, act in zip(picked, sample.active):
            services = row[act & (row < len(sizes))].tolist()
            assert len(services) == len(set(services))                 # no service twice
        # the count of picks equals the services set in x
        n_picks = (sample.active & (sample.actions < len(sizes))).sum(-1)
        assert torch.equal(n_picks, sample.deployment.sum(-1))
        if not stop_action:   # decoding runs until nothing fits any more
            free = storage.double() - used
            left = ~sample.deployment & (sizes.double().unsqueeze(0) <= free.unsqueeze(-1))
            assert not left.any()


def test_gru_step_matches_torch_gru_cell():
    """The hand-written recurrence (shared by decoding and the teacher-forced update) is torch's GRU."""
    torch.manual_seed(4)
    net = DeploymentActorCritic(5, 2, hidden=8)
    for param in net.parameters():                 # non-zero biases too, so every term is checked
        torch.nn.init.normal_(param)
    cell = torch.nn.GRUCell(8, 8)
    with torch.no_grad():
        cell.weight_ih.copy_(net.gru_input.weight)
        cell.bias_ih.copy_(net.gru_input.bias)
        cell.weight_hh.copy_(net.gru_hidden.weight)
        cell.bias_hh.copy_(net.gru_hidden.bias)
        x, h = torch.randn(6, 8), torch.randn(6, 8)
        assert torch.allclose(net._recur(net.gru_input(x), h), cell(x, h), atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("stop_action", [False, True])
def test_deployment_ratio_is_one_at_first_epoch(stop_action, precision):
    """Step-by-step decoding and the teacher-forced re-run give the same log π and V, also when the
    matrix products run in bf16 (the trainer's default where the CPU supports it)."""
    net, demand, prev, storage, sizes = _deployment_case(stop_action, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        sample = net.act(demand, prev, storage, sizes)
        logp, entropy, value = net.evaluate(demand, prev, storage, sizes, sample.actions, sample.step_masks,
                                            sample.active)
    assert logp.dtype == value.dtype == torch.float32
    assert torch.allclose((logp - sample.logp).exp(), torch.ones_like(logp), atol=1e-5)
    assert torch.allclose(value, sample.value, atol=1e-5)
    assert (entropy >= 0).all()
    # the log-prob is a sum over the steps (eq. 30): more steps, more negative; each step < 0 unless forced
    assert (sample.logp <= 1e-6).all()


def test_deployment_with_nothing_fitting_is_empty_and_finite():
    net, demand, prev, _, sizes = _deployment_case(False)
    storage = torch.full((demand.shape[0],), 0.01 * GiB)
    sample = net.act(demand, prev, storage, sizes)
    assert not sample.deployment.any()
    assert torch.equal(sample.logp, torch.zeros_like(sample.logp))
    assert torch.isfinite(sample.value).all()


def _user_case(seed: int = 0):
    torch.manual_seed(seed)
    B, K, J, Z, d = 3, 7, 4, 6, 20
    local = torch.randn(B, K, d)
    server_mask = torch.rand(B, K, J) > 0.5
    server_mask[..., 2] = True
    split_mask = torch.arange(Z).expand(B, K, Z) <= torch.randint(0, Z, (B, K, 1))
    return local, server_mask, split_mask, (B, K, J, Z, d)


def test_user_actions_are_always_valid():
    local, server_mask, split_mask, (B, K, J, Z, d) = _user_case()
    actor = UserActor(d, J, Z, hidden=32)
    with torch.no_grad():   # make invalid choices attractive: the mask must still win
        actor.server_head[0].bias.copy_(torch.linspace(5, -5, J) * ~server_mask[0, 0])
        actor.split_head[0].bias.fill_(0.0)
        actor.split_head[0].bias[-1] = 20.0
    for deterministic in (False, True):
        for _ in range(20 if not deterministic else 1):
            server, split, logp = actor.act(local, server_mask, split_mask, deterministic)
            assert server_mask.gather(-1, server.unsqueeze(-1)).all()
            assert split_mask.gather(-1, split.unsqueeze(-1)).all()
            assert torch.isfinite(logp).all()


def test_user_ratio_is_one_and_logp_is_factorised():
    local, server_mask, split_mask, (B, K, J, Z, d) = _user_case(2)
    actor = UserActor(d, J, Z, hidden=32)
    server, split, logp = actor.act(local, server_mask, split_mask)
    new_logp, entropy = actor.evaluate(local, server_mask, split_mask, server, split)
    assert torch.allclose((new_logp - logp).exp(), torch.ones_like(logp), atol=1e-5)
    # independent check: torch's Categorical over the masked logits
    server_logits, split_logits = actor.logits(local)
    p_server = torch.distributions.Categorical(logits=server_logits.masked_fill(~server_mask, -math.inf))
    p_split = torch.distributions.Categorical(logits=split_logits.masked_fill(~split_mask, -math.inf))
    expected = p_server.log_prob(server) + p_split.log_prob(split)
    assert torch.allclose(new_logp, expected, atol=1e-5)
    expected_entropy = (p_server.entropy() + p_split.entropy())
    assert torch.allclose(entropy, expected_entropy, atol=1e-4)


@pytest.mark.parametrize("centralised", [True, False])
def test_user_critics_shape_and_view(centralised):
    local, _, _, (B, K, J, Z, d) = _user_case()
    critics = UserCritics(d, 11, hidden=16, centralised=centralised)
    glob = torch.randn(B, 11)
    v_r, v_c = critics(local, glob)
    assert v_r.shape == v_c.shape == (B, K)
    changed = critics(local, glob + 1.0)[0]
    assert torch.allclose(changed, v_r) != centralised     # only the MAPPO critic sees eq. 17


def _alloc_case(seed: int = 0):
    torch.manual_seed(seed)
    B, J, K, I, Z = 2, 4, 9, 6, 5
    tokens = torch.stack([torch.randint(0, I, (B, K)), torch.randint(1, 17, (B, K)),
                          torch.randint(0, Z, (B, K))], dim=-1)
    server = torch.randint(0, J - 1, (B, K))            # server J−1 never has a user
    server[0, 0] = 0
    assoc = server.unsqueeze(1) == torch.arange(J).view(1, J, 1)
    return tokens, assoc, (B, J, K, I, Z)


def test_allocation_shares_sum_to_one_and_empty_server_is_zero():
    tokens, assoc, (B, J, K, I, Z) = _alloc_case()
    actor = AllocationActor(I, 16, Z, hidden=16)
    for deterministic in (False, True):
        shares, logp = actor.act(tokens, assoc, deterministic)
        assert torch.isfinite(shares).all() and torch.isfinite(logp).all()
        assert (shares[~assoc] == 0).all()
        has_users = assoc.any(-1)
        sums = shares.sum(-2)                            # (B, J, 2)
        assert torch.allclose(sums[has_users], torch.ones_like(sums[has_users]), atol=1e-5)
        assert (sums[~has_users] == 0).all()
        assert (logp[~has_users] == 0).all()
    # gradients through an empty server stay finite
    logp, entropy = actor.evaluate(tokens, assoc, shares)
    (logp.sum() + entropy.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in actor.parameters() if p.grad is not None)


def test_allocation_logp_matches_torch_dirichlet_and_ratio_is_one():
    tokens, assoc, (B, J, K, I, Z) = _alloc_case(3)
    actor = AllocationActor(I, 16, Z, hidden=16)
    shares, logp = actor.act(tokens, assoc)
    new_logp, entropy = actor.evaluate(tokens, assoc, shares)
    assert torch.allclose((new_logp - logp).exp(), torch.ones_like(logp), atol=1e-5)
    alpha = actor.concentration(tokens, assoc)
    for b in range(B):
        for j in range(J):
            users = assoc[b, j]
            n = int(users.sum())
            if n < 2:
                assert new_logp[b, j] == 0 and entropy[b, j] == 0     # point mass or empty
                continue
            total_lp, total_h = 0.0, 0.0
            for branch in range(2):
                dist = torch.distributions.Dirichlet(alpha[b, j, users, branch].double())
                total_lp += dist.log_prob(shares[b, j, users, branch].double()).item()
                total_h += dist.entropy().item()
            assert new_logp[b, j].item() == pytest.approx(total_lp, rel=1e-4, abs=1e-3)
            assert entropy[b, j].item() == pytest.approx(total_h, rel=1e-4, abs=1e-3)


def test_dirichlet_helper_on_hand_example():
    # Dir(α = (2, 1)) is Beta(2, 1): density 2 w on [0, 1]; at w = 0.25 log p = log 0.5
    alpha = torch.tensor([[2.0, 1.0, 7.0]])
    mask = torch.tensor([[True, True, False]])
    shares = torch.tensor([[0.25, 0.75, 0.0]])
    logp, entropy = dirichlet_logp_entropy(alpha, mask, shares)
    assert logp.item() == pytest.approx(math.log(0.5), abs=1e-6)
    # H(Beta(2, 1)) = log B(2,1) − (2−1)ψ(2) + (2+1−2)ψ(3) = log 0.5 − ψ(2) + ψ(3) = log 0.5 + 1/2
    assert entropy.item() == pytest.approx(math.log(0.5) + 0.5, abs=1e-6)


def test_allocation_critic_no_nan_for_empty_servers():
    tokens, assoc, (B, J, K, I, Z) = _alloc_case()
    for centralised in (True, False):
        value = AllocationCritic(I, 16, Z, hidden=16, centralised=centralised)(tokens, assoc)
        assert value.shape == (B, J) and torch.isfinite(value).all()


@pytest.mark.parametrize("observe_previous", [False, True])
def test_deployment_actor_sees_previous_deployment_only_when_asked(observe_previous):
    """The paper's actor (eq. 14) ignores X(t − ΔT); the extension reads the agent's own row x_{·,j}
    and the coverage Σ_j x_ij / J, with agents ordered (copy, server)."""
    I, J = 4, 3
    net = DeploymentActorCritic(I, J, hidden=8, observe_previous=observe_previous)
    X = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]], dtype=torch.float)   # one copy (J, I)
    prev = X.reshape(1, J * I).expand(J, J * I)                # every agent of the copy sees vec(X)
    own, coverage = net.previous_deployment(prev)
    assert torch.equal(own, X)                                 # agent j reads row j
    assert torch.allclose(coverage, torch.tensor([[1 / 3, 1 / 3, 0, 1]] * J))
    demand, storage = torch.rand(J, 2 * I) / I, torch.full((J,), 4 * GiB)
    sizes = torch.tensor([0.5, 1.0, 1.5, 2.0]) * GiB
    fixed, _, _ = net._prepare(demand, prev, storage, sizes)
    fixed_other, _, _ = net._prepare(demand, 1.0 - prev, storage, sizes)
    assert torch.equal(fixed, fixed_other) != observe_previous


def test_tanh_of_bfloat16_has_torch_tanh_bits_and_gradient():
    """policies.common.tanh (float32 evaluation of bfloat16 inputs, for speed) gives every bfloat16
    value the bits of torch.tanh, and the same gradient."""
    from optimizer.policies.common import tanh
    every = torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    ours, reference = tanh(every), torch.tanh(every)
    assert torch.equal(ours.isnan(), reference.isnan())
    assert torch.equal(ours[~ours.isnan()].view(torch.int16), reference[~reference.isnan()].view(torch.int16))
    x = torch.randn(64, 33).bfloat16()
    grad = torch.randn(64, 33).bfloat16()
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    tanh(a).backward(grad)
    torch.tanh(b).backward(grad)
    assert torch.equal(a.grad.view(torch.int16), b.grad.view(torch.int16))
