"""HC-MAPPO-L and its ablations (Sec. V-A) as small variations of one trainer.

| algorithm          | critics        | Lagrangian λ | deployment | allocation  |
|--------------------|----------------|--------------|------------|-------------|
| hc-mappo-l         | centralised    | yes          | learned    | learned     |
| h-mappo            | centralised    | no (λ = 0)   | learned    | learned     |
| h-ippo             | decentralised  | no           | learned    | learned     |
| hc-ippo-l          | decentralised  | yes          | learned    | learned     |
| heuristic-mappo-l  | centralised    | yes          | LRU        | equal share |

A learned layer is the network TrainConfig names: ``deployment_policy`` (in-turn by default, the
paper's GRU with ``gru``) and ``allocation_policy`` (the square-root tilt by default, the paper's
attention with ``attention``).

Every variant uses the same network sizes, learning rates, iterations and seeds (one TrainConfig).
Without the Lagrangian the delay-cost critic is still trained (for logging), but λ stays 0 and the
user advantage is the reward advantage alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import UserInputError
from optimizer.baselines import EqualShare, LRUDeployment


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    centralised_critics: bool
    lagrangian: bool
    learned_deployment: bool = True
    learned_allocation: bool = True


ALGORITHMS: dict[str, AlgoSpec] = {
    "hc-mappo-l": AlgoSpec("hc-mappo-l", centralised_critics=True, lagrangian=True),
    "h-mappo": AlgoSpec("h-mappo", centralised_critics=True, lagrangian=False),
    "h-ippo": AlgoSpec("h-ippo", centralised_critics=False, lagrangian=False),
    "hc-ippo-l": AlgoSpec("hc-ippo-l", centralised_critics=False, lagrangian=True),
    "heuristic-mappo-l": AlgoSpec("heuristic-mappo-l", centralised_critics=True, lagrangian=True,
                                  learned_deployment=False, learned_allocation=False),
}


def get_spec(name: str) -> AlgoSpec:
    if name not in ALGORITHMS:
        raise UserInputError(f"--algo {name!r}: unknown algorithm (allowed: {', '.join(ALGORITHMS)})")
    return ALGORITHMS[name]


def heuristic_deployment() -> LRUDeployment:
    """LRU deployment of the env baselines (Heuristic-MAPPO-L, Sec. V-A)."""
    return LRUDeployment()


def heuristic_allocation() -> EqualShare:
    """Equal-share allocation of the env baselines (Heuristic-MAPPO-L, Sec. V-A)."""
    return EqualShare()
