"""What a leakage number was measured on: content hashes of the victim as loaded, precision and device kind.

A label (``--weights none``, a file name, ``pkg.mod:factory``) says where a model came from, not what it
is: the file can be overwritten and the factory edited. The settings key
(:meth:`inversion.config.LeakageSettings.key`) therefore holds a :class:`VictimIdentity`:

* ``weights_sha256``: SHA-256 over the victim's ``state_dict`` as loaded (every parameter and buffer:
  name, dtype, shape and raw bytes, in ``state_dict`` order). For ``--weights none`` that is the seeded
  random init (:func:`profiler.zoo.load_model` seeds it), so the hash is reproducible; a weights file
  stored in float16 is hashed as the float32 values the model holds after loading.
* ``structure_sha256``: SHA-256 over the module tree (every module's type and plain attributes such as
  channels, stride, ``batch_first``, hooks by name), the tensors' names, dtypes and shapes, and the
  ``torch.fx`` graph of ``forward`` (each node's op, target and arguments). A model fx cannot trace is
  described by the source code of its classes defined outside torch. An edited factory or ``forward``
  changes it; comments in a traceable model's code do not.
* ``precision`` (``bf16`` or ``fp32``) and ``device_kind`` (``cpu``, ``cuda``): the decoder trains and the
  features are computed under them, and their numbers differ in the third decimal.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import fx, nn

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class VictimIdentity:
    """The measured victim: hashes of its weights and structure, the precision and the device kind."""

    weights_sha256: str
    structure_sha256: str
    precision: str          # "bf16" or "fp32"
    device_kind: str        # torch device type: "cpu", "cuda"

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of every tensor of ``model.state_dict()`` (name, dtype, shape, bytes), in order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(json.dumps([name, str(flat.dtype), list(tensor.shape)]).encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())       # raw bytes of any dtype (bf16 and bool too)
    return digest.hexdigest()


def _qualified(obj: Any) -> str:
    """``module.qualname`` of a function, class or method; ``repr`` (without addresses) otherwise."""
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name is None:
        return _ADDRESS.sub("", repr(obj))
    owner = getattr(obj, "__module__", None) or getattr(getattr(obj, "__self__", None), "__name__", None)
    return f"{owner}.{name}" if owner else str(name)


def _value(obj: Any) -> Any:
    """A JSON-able, address-free description of an attribute or an fx argument."""
    if isinstance(obj, fx.Node):
        return f"%{obj.name}"
    if isinstance(obj, _PLAIN):
        return obj if not isinstance(obj, float) or obj == obj else "nan"
    if isinstance(obj, (list, tuple)):
        return [_value(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _value(v) for k, v in obj.items()}
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return str(obj)
    if isinstance(obj, slice):
        return ["slice", _value(obj.start), _value(obj.stop), _value(obj.step)]
    return _qualified(obj) if callable(obj) else _ADDRESS.sub("", repr(obj))


def _module_text(name: str, module: nn.Module) -> str:
    plain = {k: _value(v) for k, v in sorted(vars(module).items())
             if not k.startswith("_") and (isinstance(v, (*_PLAIN, list, tuple)) or callable(v))
             and not isinstance(v, (nn.Module, torch.Tensor))}
    hooks = [_qualified(h) for d in (module._forward_pre_hooks, module._forward_hooks) for h in d.values()]
    return json.dumps(["module", name or ".", _qualified(type(module)), plain, hooks])


def _graph_lines(model: nn.Module) -> list[str]:
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # fx raises many types; such a model is described by its own code instead
        return _source_lines(model)
    return [json.dumps(["node", n.op, n.name, _qualified(n.target), _value(n.args), _value(n.kwargs)])
            for n in graph.nodes]


def _source_lines(model: nn.Module) -> list[str]:
    """Source of every module class of ``model`` defined outside torch (what fx could not trace)."""
    lines = ["graph: not traceable by torch.fx"]
    for cls in sorted({type(m) for m in model.modules()}, key=_qualified):
        if cls.__module__.split(".")[0] in ("torch", "torchvision"):
            continue
        try:
            lines.append(inspect.getsource(cls))
        except (OSError, TypeError):
            lines.append(f"source of {_qualified(cls)} unavailable")
    return lines


def structure_text(model: nn.Module) -> str:
    """The description :func:`structure_sha256` hashes (one line per module, tensor and graph node)."""
    lines = [_module_text(name, module) for name, module in model.named_modules()]
    lines += [json.dumps(["tensor", name, str(t.dtype), list(t.shape)]) for name, t in model.state_dict().items()]
    return "\n".join(lines + _graph_lines(model))


def structure_sha256(model: nn.Module) -> str:
    return hashlib.sha256(structure_text(model).encode()).hexdigest()


def victim_identity(model: nn.Module, device: torch.device, bf16: bool) -> VictimIdentity:
    """The identity of ``model`` (as loaded, before it is moved or split) measured on ``device``."""
    return VictimIdentity(weights_sha256(model), structure_sha256(model), "bf16" if bf16 else "fp32",
                          torch.device(device).type)
