"""Upper bounds on the numbers a user types, so that no single typo can hang the tool or crash it with a
traceback (each count on its own; sizes that pass one by one can still multiply into more than the RAM).

A seed beyond 64 bits overflows torch (``ValueError: Overflow when unpacking long long``) after the run
folder exists; ``--set env.num_users=10000000000`` allocates until the machine swaps. The bounds lie far
above every scale the paper studies (J ≤ 20 servers, K ≤ 200 users, 1000 iterations) and well inside
what one process can hold, so a typo is refused in one line while every real experiment passes.
"""

from __future__ import annotations

from common.errors import UserInputError

SEED_MAX = 2**32 - 1    # a 32-bit seed: what every seeded library accepts (torch takes 64 bits, so seed + offsets fit)


def check_at_most(values: object, limits: dict[str, int], prefix: str = "config ") -> None:
    """Raise a one-line :class:`UserInputError` naming ``prefix + field`` for the first attribute of the
    config ``values`` above its limit in ``limits``."""
    for name, high in limits.items():
        value = getattr(values, name)
        if value > high:
            raise UserInputError(f"{prefix}{name}: must be at most {high:,}, got {value!r}")
