"""The model zoo: a decorator registry of model factories, and ``load_model`` for zoo or user models.

Add a model without editing the toolkit::

    from profiler.zoo import register_model

    @register_model("tinynet", input_shape=(3, 64, 64), description="my 4-layer CNN")
    def tinynet() -> nn.Module:
        return TinyNet()

and name it on the command line as ``--model mypkg.nets:tinynet`` (importing ``mypkg.nets`` registers
it: the table is named ``tinynet`` and the registered input shape is used). A plain factory works too:
its input shape comes from a ``tinynet.input_shape`` attribute or ``--input-shape 3,64,64``.

The nine bundled models are the paper's service pool (Sec. V): LeNet-7/9/12 (3×32×32, see
:mod:`profiler.lenet`), ResNet-18/34/50 and VGG-13/16/19 from torchvision (3×224×224).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from common.errors import UserInputError
from profiler import lenet
from profiler.weights import DEFAULT_SEED, NO_WEIGHTS, apply_weights

ModelFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it (random init) and the shape of one input (C, H, W)."""

    name: str
    factory: ModelFactory
    input_shape: tuple[int, ...]
    description: str


@dataclass
class LoadedModel:
    """A model ready to profile: in eval mode, with its input shape and the label of its weights."""

    name: str
    model: nn.Module
    input_shape: tuple[int, ...]
    weights_label: str

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """A deterministic standard-normal input of shape ``(batch, *input_shape)``."""
        generator = torch.Generator().manual_seed(DEFAULT_SEED)
        return torch.randn((batch, *self.input_shape), generator=generator)


class ModelRegistry:
    """Name → :class:`ModelSpec`. Names are lower-case; registering a name twice is an error."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def register(self, name: str, input_shape: tuple[int, ...], description: str = ""
                 ) -> Callable[[ModelFactory], ModelFactory]:
        """Decorator: ``@register_model("name", input_shape=(3, 224, 224), description=...)``."""
        key = name.lower()
        shape = tuple(int(s) for s in input_shape)
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"model {name!r}: input_shape must be positive ints, got {input_shape!r}")

        def decorate(factory: ModelFactory) -> ModelFactory:
            if key in self._specs:
                raise ValueError(f"model {key!r} is already registered")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._specs[key] = ModelSpec(key, factory, shape, description or (doc[0] if doc else ""))
            return factory

        return decorate

    def find(self, factory: ModelFactory) -> ModelSpec | None:
        """The spec registered for ``factory`` (the decorated function itself), if any."""
        return next((spec for spec in self._specs.values() if spec.factory is factory), None)

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name.lower()]
        except KeyError:
            raise UserInputError(f"unknown model {name!r}; the zoo has: {', '.join(self.names())} "
                                 "(or give package.module:factory)") from None

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._specs


ZOO = ModelRegistry()
register_model = ZOO.register


def available() -> list[str]:
    """Names of the registered models, in registration order."""
    return ZOO.names()


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"3,32,32"`` → ``(3, 32, 32)``; one clear error for anything else."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise UserInputError(f"--input-shape {text!r}: expected positive integers C,H,W such as 3,32,32")
    return shape


def _import_factory(spec: str) -> ModelFactory:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserInputError(f"model {spec!r}: expected package.module:factory")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        file = Path(module_name)
        folder = str(file.parent) if str(file.parent) not in ("", ".") else "the current folder"
        raise UserInputError(f"model {spec!r}: {module_name!r} is a file path; give a module name, e.g. "
                             f"--model {file.with_suffix('').name}:{attr} run from {folder} "
                             "(or with that folder on PYTHONPATH)")
    if os.getcwd() not in sys.path:  # like `python -m`: a user's package in the current folder imports
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while the user's module runs
        raise UserInputError(f"model {spec!r}: cannot import {module_name!r} "
                             f"({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserInputError(f"model {spec!r}: {module_name!r} has no callable {attr!r}")
    return factory


def _build(factory: ModelFactory, spec: str) -> nn.Module:
    """Call ``factory()`` under a fixed seed (reproducible random init) without touching global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEFAULT_SEED)
        try:
            model = factory()
        except UserInputError:
            raise
        except Exception as exc:
            raise UserInputError(f"model {spec!r}: factory failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, nn.Module):
        raise UserInputError(f"model {spec!r}: factory returned {type(model).__name__}, not an nn.Module")
    return model


def _shape_for(name: str, given: tuple[int, ...] | None, known: tuple[int, ...] | None) -> tuple[int, ...]:
    """``--input-shape`` if given (with as many dimensions as the model's own shape), else the model's."""
    if given is None:
        return tuple(known)
    if known is not None and len(given) != len(known):
        text = ",".join(map(str, given))
        raise UserInputError(f"--input-shape {text}: {name} takes {len(known)} dimensions "
                             f"({','.join(map(str, known))} by default)")
    return tuple(given)


def resolve(spec: str, input_shape: tuple[int, ...] | None = None) -> tuple[str, ModelFactory, tuple[int, ...]]:
    """``(name, factory, input_shape)`` of a zoo name or a ``package.module:factory`` spec.

    A factory named by ``package.module:factory`` that its module registers with :func:`register_model`
    gets its registered name and input shape; otherwise the name is ``spec`` and the shape comes from
    ``input_shape`` or a ``factory.input_shape`` attribute.
    """
    if ":" in spec:
        factory = _import_factory(spec)
        registered = ZOO.find(factory)
        if registered is not None:
            return registered.name, factory, _shape_for(registered.name, input_shape, registered.input_shape)
        own = getattr(factory, "input_shape", None)
        if input_shape is None and own is None:
            raise UserInputError(f"model {spec!r}: no input shape; give --input-shape C,H,W, register it with "
                                 "@register_model(name, input_shape=...) or set an `input_shape` attribute")
        known = None if own is None else parse_input_shape(",".join(str(s) for s in own))
        return spec, factory, _shape_for(spec, input_shape, known)
    entry = ZOO.get(spec)
    return entry.name, entry.factory, _shape_for(entry.name, input_shape, entry.input_shape)


def load_model(spec: str, weights: str = NO_WEIGHTS, input_shape: tuple[int, ...] | None = None) -> LoadedModel:
    """Build a zoo model or a user's ``package.module:factory`` in eval mode, with ``weights`` applied.

    ``weights``: ``"none"`` (seeded random init), a torchvision weights name found in the local torch
    hub cache, or a path to a state_dict. The label of what was used is kept in ``weights_label``.
    """
    name, factory, shape = resolve(spec, input_shape)
    model = _build(factory, spec)
    label = apply_weights(model, weights, name)
    return LoadedModel(name, model.eval(), shape, label)


def build_on_meta(spec: str) -> nn.Module:
    """The model's structure with no storage (``meta`` device): instant, for counting units."""
    _, factory, _ = resolve(spec)
    with torch.device("meta"):
        return _build(factory, spec)


# --- the bundled zoo ------------------------------------------------------------------------------

_IMAGENET = (3, 224, 224)


@register_model("lenet7", input_shape=lenet.INPUT_SHAPE, description="LeNet-7: 4 conv + 3 FC, 10 classes")
def _lenet7() -> nn.Module:
    return lenet.lenet7()


@register_model("lenet9", input_shape=lenet.INPUT_SHAPE, description="LeNet-9: 6 conv + 3 FC, 10 classes")
def _lenet9() -> nn.Module:
    return lenet.lenet9()


@register_model("lenet12", input_shape=lenet.INPUT_SHAPE, description="LeNet-12: 9 conv + 3 FC, 10 classes")
def _lenet12() -> nn.Module:
    return lenet.lenet12()


def _torchvision(name: str) -> ModelFactory:
    def factory() -> nn.Module:
        with warnings.catch_warnings():  # torchvision's import-time FutureWarning about torch.jit.script
            warnings.simplefilter("ignore", FutureWarning)
            import torchvision  # imported lazily: ~2 s, and only the big models need it

        return torchvision.models.get_model(name, weights=None)

    return factory


for _name, _what in (("resnet18", "ResNet-18 (torchvision), 1000 classes"),
                     ("resnet34", "ResNet-34 (torchvision), 1000 classes"),
                     ("resnet50", "ResNet-50 (torchvision), 1000 classes"),
                     ("vgg13", "VGG-13 (torchvision), 1000 classes"),
                     ("vgg16", "VGG-16 (torchvision), 1000 classes"),
                     ("vgg19", "VGG-19 (torchvision), 1000 classes")):
    register_model(_name, input_shape=_IMAGENET, description=_what)(_torchvision(_name))
