"""Lists of seeds as a user types them: ``0-7``, ``0,3,5``, ``0-2,9``."""

from __future__ import annotations

from common.errors import UserInputError


def parse_seed_list(text: str, high: int, most: int | None = None, option: str = "--seeds") -> list[int]:
    """``"0-7"`` → 0…7, ``"0,3,5"`` → [0, 3, 5], ``"0-2,9"`` → [0, 1, 2, 9]; one-line error otherwise
    (a seed outside 0..``high``, more than ``most`` seeds, a seed named twice)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, top = part.partition("-")
        try:
            first, last = (int(low), int(top)) if dash else (int(part), int(part))
        except ValueError:
            raise UserInputError(f"{option} {text}: expected seeds like 0-7 or 0,3,5, got {part!r}") from None
        if first < 0 or last > high or first > last:
            raise UserInputError(f"{option} {text}: {part} is not a range of seeds in 0..{high}")
        seeds.extend(range(first, last + 1))
        if most is not None and len(seeds) > most:
            raise UserInputError(f"{option} {text}: at most {most} runs in one group")
    if len(set(seeds)) != len(seeds):
        raise UserInputError(f"{option} {text}: a seed is named twice")
    return seeds
