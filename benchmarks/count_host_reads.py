"""Where one training iteration reads tensors back to the host (each a device sync on a GPU).

    .venv/bin/python benchmarks/count_host_reads.py [--profiles data/profiles]

Builds the default HC-MAPPO-L trainer, runs iteration 1 (the warm start), then counts, under a
``TorchFunctionMode``, every ``item``/``tolist``/``__bool__``/``__float__``/``__int__``/``__index__`` call of
iteration 2 by the line of ``optimizer/`` that made it, most frequent first.
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optimizer.algos.config import TrainConfig, preset  # noqa: E402
from optimizer.algos.hc_mappo_l import Trainer  # noqa: E402
from optimizer.algos.runner import load_catalog  # noqa: E402
from optimizer.config import EnvConfig  # noqa: E402

READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__"}
PACKAGE = str(Path(__file__).resolve().parent.parent / "optimizer")


class HostReads(TorchFunctionMode):
    """Counts host reads by (kind, file, line) of the innermost ``optimizer/`` frame."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in READS:
            frames = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(PACKAGE)]
            where = (frames[-1].filename[len(PACKAGE) + 1:], frames[-1].lineno) if frames else ("?", 0)
            self.counts[(name, *where)] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="data/profiles")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env_cfg = EnvConfig()
    trainer = Trainer(TrainConfig(**{**preset("default"), "tensorboard": False}), env_cfg,
                      load_catalog(args.profiles, env_cfg))
    trainer.train_iteration()
    reads = HostReads()
    with reads:
        trainer.train_iteration()
    print(f"{sum(reads.counts.values())} host reads in one iteration")
    for (name, path, line), count in reads.counts.most_common():
        print(f"{count:5d}  {name:10s} optimizer/{path}:{line}")


if __name__ == "__main__":
    main()
