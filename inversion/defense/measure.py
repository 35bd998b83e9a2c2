"""Price one option (split z, defense, strength, seed): costs, accuracy, and leakage under three attacks.

In order: build the defense for the tensor that crosses cut z, calibrate and fine-tune it
(:mod:`inversion.defense.finetune`), measure test accuracy on every test image, compute what the device
sends for the attacker's auxiliary images and for its victims, then attack:

* ``decoder``: the leakage decoder (:func:`inversion.attack.attack_split`) trained on *defended*
  features: an attacker who knows the defense and collects its outputs;
* ``decoder_unaware``: the decoder trained on the undefended victim's features (what the leakage table
  measures), applied to the defended ones: the attacker the defense's own papers often report;
  not defined when the defense changes the tensor's shape (a bottleneck);
* ``rmle``: the white-box optimisation attack (:mod:`inversion.defense.whitebox`).

The option's leakage is the worst (highest mean SSIM) over the attacks; each attack's number is kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from common.precision import autocast
from inversion.attack import TrainConfig, attack_split, reconstruct, train_decoder
from inversion.data import victim_input
from inversion.decoder import Decoder
from inversion.defense.builtin import NoDefense
from inversion.defense.finetune import DefendedSplit, FinetuneConfig, accuracy, calibrate, finetune
from inversion.defense.registry import DefenseSpec
from inversion.defense.whitebox import WhiteboxConfig, rmle_attack
from inversion.features import CACHE_DTYPE, SplitFeatures, decoder_input_shapes
from inversion.metrics import Leakage, mean_ci95, no_information_floor, psnr_per_image, ssim_per_image
from profiler.latency import median_ms

FEATURE_BATCH = 128
LATENCY_REPEATS, LATENCY_WARMUP = 20, 3


@dataclass(frozen=True)
class DefenseBudget:
    """Attacker images, decoder steps, fine-tuning and white-box settings of one preset."""

    name: str
    n_train: int
    n_test: int
    decoder: TrainConfig
    finetune: FinetuneConfig
    whitebox: WhiteboxConfig

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


BUDGETS: dict[str, DefenseBudget] = {
    "smoke": DefenseBudget("smoke", 64, 16, TrainConfig(steps=10, batch_size=32), FinetuneConfig(steps=5, batch_size=32, val_images=64),
                           WhiteboxConfig(steps=5, images=8, batch_size=8, choose_images=4)),
    "quick": DefenseBudget("quick", 2048, 256, TrainConfig(steps=400, batch_size=64), FinetuneConfig(),
                           WhiteboxConfig()),
    "standard": DefenseBudget("standard", 4096, 512, TrainConfig(steps=1600, batch_size=64),
                              FinetuneConfig(steps=600), WhiteboxConfig(steps=500, images=128)),
}


@dataclass
class Victim:
    """What every option of one run shares: the split model, its data and the undefended references."""

    split_model: Any                       # profiler.graph.SplitModel
    channels: int                          # the model's input channels
    train_x: torch.Tensor                  # owner's images (fine-tuning), [0, 1]
    train_y: torch.Tensor
    test_x: torch.Tensor                   # accuracy images
    test_y: torch.Tensor
    aux_images: torch.Tensor               # attacker's auxiliary images
    victim_images: torch.Tensor            # the attacked held-out images
    unit_macs: list[int]                   # MACs of units 1..L at the run's image size (fvcore, profiler.costs)
    device: torch.device
    bf16: bool
    clean_decoders: dict[tuple[int, int], Decoder] = field(default_factory=dict)   # (z, seed) → undefended g_z


def _estimate_json(originals: torch.Tensor, recon: torch.Tensor, aux_images: torch.Tensor) -> dict[str, Any]:
    """SSIM, PSNR and pixel MSE (images in [0, 1]) with CIs over ``originals``, and the no-information floor
    on those same images."""
    per_image = ssim_per_image(originals, recon)
    leak = Leakage(mean_ci95(per_image), mean_ci95(psnr_per_image(originals, recon)))
    ssim, psnr = leak.ssim.as_json(), leak.psnr.as_json()
    floor = no_information_floor(aux_images, originals).ssim
    mse = mean_ci95(((originals.float() - recon.float()) ** 2).flatten(1).mean(1).numpy()).as_json()
    return {"ssim": ssim["mean"], "ssim_ci95": ssim["ci95"], "psnr": psnr["mean"], "psnr_ci95": psnr["ci95"],
            "mse": mse["mean"], "mse_ci95": mse["ci95"], "n": ssim["n"], "floor_ssim": round(floor.mean, 4), "floor_ssim_ci95": [round(v, 4) for v in floor.ci95],
            "ssim_per_image": [round(float(v), 4) for v in per_image]}


@torch.no_grad()
def sent_features(model: DefendedSplit, images: torch.Tensor, device: torch.device, bf16: bool,
                  decoder_shape: tuple[int, ...] | None) -> torch.Tensor:
    """What the device sends for ``images`` (defense randomness included), in the decoder's input form."""
    outs = []
    for start in range(0, len(images), FEATURE_BATCH):
        with autocast(device, bf16):
            sent = model.send(images[start:start + FEATURE_BATCH].to(device)).float()
        shape = decoder_shape if decoder_shape and math.prod(decoder_shape) == sent[0].numel() else sent.shape[1:]
        outs.append(sent.reshape(len(sent), *shape).to(CACHE_DTYPE))
    return torch.cat(outs)


def _latencies(model: DefendedSplit, images: torch.Tensor, device: torch.device) -> tuple[float, float]:
    x = images[:1].to(device)
    with torch.inference_mode():
        sent = model.send(x)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        dev, srv = median_ms([lambda: model.send(x), lambda: model.receive(sent)], LATENCY_REPEATS, LATENCY_WARMUP, sync)
    return dev, srv


def clean_decoder(victim: Victim, z: int, budget: DefenseBudget, seed: int) -> Decoder:
    """g_z trained on the undefended victim's features (cached per split and seed): the unaware attacker."""
    key = (z, seed)
    if key not in victim.clean_decoders:
        plain = DefendedSplit(victim.split_model.head(z), NoDefense(0.0, ()), victim.split_model.tail(z),
                              victim.channels)
        shape = _decoder_shape(victim, z)
        features = SplitFeatures(z, sent_features(plain, victim.aux_images, victim.device, victim.bf16, shape),
                                 sent_features(plain, victim.victim_images[:1], victim.device, victim.bf16, shape))
        decoder, *_ = train_decoder(features, victim.aux_images, int(victim.aux_images.shape[-1]), budget.decoder,
                                    victim.device, seed, victim.bf16)
        victim.clean_decoders[key] = decoder
    return victim.clean_decoders[key]


def _decoder_shape(victim: Victim, z: int) -> tuple[int, ...]:
    """The undefended feature's decoder-input form at z (a flattened conv feature in its C × h × w form)."""
    example = victim_input(victim.aux_images[:1].to(victim.device), victim.channels)
    return decoder_input_shapes(victim.split_model, example, [z])[z]


def price_option(victim: Victim, z: int, spec: DefenseSpec, strength: float, seed: int, budget: DefenseBudget,
                 reference_accuracy: float | None, progress: Callable[[str], None] = lambda phase: None
                 ) -> dict[str, Any]:
    """The record of one option (module docstring); ``reference_accuracy`` prices the accuracy drop."""
    started = time.perf_counter()
    device, bf16 = victim.device, victim.bf16
    torch.manual_seed(seed)
    head, tail = victim.split_model.head(z), victim.split_model.tail(z)
    with torch.no_grad():
        clean_shape = tuple(head(victim_input(victim.aux_images[:1], victim.channels)).shape[1:])
    defense = spec.build(strength, clean_shape)
    model = DefendedSplit(head, defense, tail, victim.channels).to(device)
    calibrate(model, victim.train_x, device, bf16)
    progress("fine-tune")
    tuned = finetune(model, victim.train_x, victim.train_y, budget.finetune, device, bf16, seed)
    model.eval()
    progress("accuracy")
    torch.manual_seed(seed + 1)
    acc = accuracy(model, victim.test_x, victim.test_y, device, bf16)
    progress("features")
    shape = _decoder_shape(victim, z)
    torch.manual_seed(seed + 2)
    aux_f = sent_features(model, victim.aux_images, device, bf16, shape)
    test_f = sent_features(model, victim.victim_images, device, bf16, shape)
    progress("decoder")
    outcome = attack_split(SplitFeatures(z, aux_f, test_f, defense.sent_shape()), victim.aux_images,
                           victim.victim_images, budget.decoder, device, seed, bf16)
    attacks: dict[str, Any] = {"decoder": _estimate_json(victim.victim_images, outcome.reconstructions, victim.aux_images)
                               | {"convergence": outcome.convergence.as_json()}}
    if defense.sent_shape() == clean_shape:
        progress("unaware decoder")
        recon = reconstruct(clean_decoder(victim, z, budget, seed), test_f, device, bf16)
        attacks["decoder_unaware"] = _estimate_json(victim.victim_images, recon, victim.aux_images)
    progress("rmle")
    n_wb = min(budget.whitebox.images, len(victim.victim_images))
    n_aux = min(budget.whitebox.choose_images, len(aux_f))
    recon, tv = rmle_attack(model, test_f[:n_wb].float().reshape(n_wb, *defense.sent_shape()),
                            aux_f[:n_aux].float().reshape(n_aux, *defense.sent_shape()),
                            victim.aux_images[:n_aux], budget.whitebox, device, bf16)
    attacks["rmle"] = _estimate_json(victim.victim_images[:n_wb], recon, victim.aux_images) | {"tv_weight": tv}
    worst = max(attacks, key=lambda a: attacks[a]["ssim"] if attacks[a]["ssim"] is not None else -math.inf)
    dev_ms, srv_ms = _latencies(model, victim.test_x, device)
    return {
        "split": z, "defense": spec.name, "strength": strength, "seed": seed, "trains": defense.trains,
        "sent_shape": list(defense.sent_shape()), "sent_bytes": defense.sent_bytes(),
        "clean_bytes": 4 * math.prod(clean_shape),
        "device_macs": sum(victim.unit_macs[:z]) + defense.device_macs(),
        "server_macs": sum(victim.unit_macs[z:]) + defense.server_macs(),
        "defense_macs": {"device": defense.device_macs(), "server": defense.server_macs()},
        "device_latency_ms": round(dev_ms, 4), "server_latency_ms": round(srv_ms, 4),
        "accuracy": acc.as_json(),
        "accuracy_drop": None if reference_accuracy is None else round(reference_accuracy - acc.value, 6),
        "attacks": attacks,
        "leakage": {"attack": worst, "ssim": attacks[worst]["ssim"], "ssim_ci95": attacks[worst]["ssim_ci95"]},
        "finetune": tuned.as_json(),
        "seconds": round(time.perf_counter() - started, 1),
    }
