"""Named column layouts of the observation tensors (eq. 14–17), published by the env.

Other modules (policies, baselines) read a block by name, ``obs.local[..., layout.deployment]``,
instead of re-deriving offsets from tensor contents. The env builds its tensors in this order.
"""

from __future__ import annotations

from dataclasses import dataclass


def _blocks(widths: dict[str, int]) -> dict[str, slice]:
    out, start = {}, 0
    for name, width in widths.items():
        out[name] = slice(start, start + width)
        start += width
    return out


@dataclass(frozen=True)
class UserLocalLayout:
    """Columns of ``UserObs.local`` (eq. 16): one-hot(i) | one-hot(D^in − low) | vec(X(t)) |
    channel features (J, only when observed). ``deployment`` is the same for every user of a slot."""

    service: slice
    input_size: slice
    deployment: slice
    channel: slice | None
    width: int

    @classmethod
    def of(cls, num_services: int, num_input_sizes: int, num_servers: int,
           observe_channel: bool) -> "UserLocalLayout":
        widths = {"service": num_services, "input_size": num_input_sizes,
                  "deployment": num_servers * num_services}
        if observe_channel:
            widths["channel"] = num_servers
        blocks = _blocks(widths)
        return cls(blocks["service"], blocks["input_size"], blocks["deployment"], blocks.get("channel"),
                   blocks[next(reversed(blocks))].stop)


@dataclass(frozen=True)
class DeploymentLayout:
    """Columns of ``DeploymentObs.local`` (eq. 14) r | h_j | x^st and of ``.glob`` (eq. 15), which
    appends ``previous`` = vec(X(t − ΔT)) server-major (j·I + i)."""

    request_share: slice
    server_share: slice
    selected: slice
    previous: slice

    @classmethod
    def of(cls, num_services: int, num_servers: int) -> "DeploymentLayout":
        b = _blocks({"request_share": num_services, "server_share": num_services, "selected": num_services,
                     "previous": num_servers * num_services})
        return cls(b["request_share"], b["server_share"], b["selected"], b["previous"])
