"""The zoo registry, the LeNets, user factories and input shapes."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from common.errors import UserInputError
from profiler import lenet
from profiler.graph import split_model
from profiler.zoo import ModelRegistry, available, build_on_meta, load_model, parse_input_shape

from zoofacts import PAPER_UNITS, weight_layers


def test_the_papers_nine_models_are_in_the_zoo():
    assert set(PAPER_UNITS) <= set(available())


@pytest.mark.parametrize("name", available())
def test_unit_counts(name):
    skeleton = build_on_meta(name)
    units = split_model(skeleton).num_units
    assert 1 <= units <= weight_layers(skeleton)
    if name in PAPER_UNITS:
        assert units == PAPER_UNITS[name]


@pytest.mark.parametrize("factory,weight_layers", [(lenet.lenet7, 7), (lenet.lenet9, 9), (lenet.lenet12, 12)])
def test_lenet_weight_layers_and_output(factory, weight_layers):
    model = factory().eval()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == weight_layers
    assert model(torch.randn(2, *lenet.INPUT_SHAPE)).shape == (2, lenet.NUM_CLASSES)


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b = load_model("lenet7"), load_model("lenet7")
    assert torch.rand(1) == expected_next
    for (_, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb)
    assert a.weights_label == "none" and not a.model.training


def test_registry_decorator_and_errors():
    registry = ModelRegistry()

    @registry.register("Tiny", input_shape=(1, 8, 8))
    def tiny() -> nn.Module:
        """A one-layer net."""
        return nn.Conv2d(1, 2, 3)

    assert registry.names() == ["tiny"]
    assert registry.get("TINY").description == "A one-layer net."
    with pytest.raises(ValueError, match="already registered"):
        registry.register("tiny", input_shape=(1, 8, 8))(tiny)
    with pytest.raises(UserInputError, match="the zoo has: tiny"):
        registry.get("nope")


def test_unknown_model_lists_the_zoo():
    with pytest.raises(UserInputError) as err:
        load_model("resnet19")
    assert all(name in str(err.value) for name in available())


@pytest.mark.parametrize("text,shape", [("3,32,32", (3, 32, 32)), (" 1, 28 ,28", (1, 28, 28)), ("3x64x64", (3, 64, 64))])
def test_parse_input_shape(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["", "3,,32", "3,-1,4", "a,b", "3,0,5"])
def test_parse_input_shape_rejects(text):
    with pytest.raises(UserInputError, match="--input-shape"):
        parse_input_shape(text)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's package on sys.path: factories with and without an ``input_shape`` attribute."""
    (tmp_path / "usernets.py").write_text(textwrap.dedent("""
        from torch import nn

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        tiny.input_shape = (3, 8, 8)

        def shapeless():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def not_a_module():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usernets"
    sys.modules.pop("usernets", None)


def test_user_factory_with_input_shape_attribute(user_module):
    loaded = load_model(f"{user_module}:tiny")
    assert loaded.name == "usernets:tiny" and loaded.input_shape == (3, 8, 8)
    assert loaded.model(loaded.example_input()).shape == (1, 2)


def test_user_factory_shape_from_option_or_error(user_module):
    assert load_model(f"{user_module}:shapeless", input_shape=(3, 16, 16)).input_shape == (3, 16, 16)
    with pytest.raises(UserInputError, match="--input-shape"):
        load_model(f"{user_module}:shapeless")


@pytest.mark.parametrize("spec,message", [("no_such_pkg.mod:f", "cannot import"),
                                          ("usernets:missing", "no callable"),
                                          ("usernets:not_a_module", "not an nn.Module"),
                                          ("usernets:", "package.module:factory")])
def test_user_factory_errors(user_module, spec, message):
    with pytest.raises(UserInputError, match=message):
        load_model(spec, input_shape=(3, 8, 8))
