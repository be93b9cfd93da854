"""Quantised inference: ``int8`` on CPU and GPU, ``int4`` weight-only on GPU, applied in place after loading.

What is quantised: every ``nn.Linear`` of the LLM (attention and MLP projections of each Qwen2 layer) and
``lm_head``; with ``vision=True`` also those of the vision tower. Embeddings, norms, the projector, the object
tokenizer and OCI stay in the load dtype. Nothing quantised is written to disk: quantising a loaded model takes
about a second at the 2B shape.

``int8`` on CPU is :class:`Int8Linear`: weights symmetric int8 per output channel, activations symmetric int8
per token, quantised on the fly, and the int8 x int8 -> int32 product by torch's own ``torch._int_mm`` (oneDNN;
VNNI where the CPU has it). Per-token activation scales are what keeps it accurate: ``torch.ao``'s
``quantize_dynamic`` uses one scale per tensor at 7 bits (``reduce_range``), and one outlier token then costs every
other token its precision. Speed, measured by ``benchmarks/bench_quantize.py`` on a shared 2-core CPU: weights
0.40x of fp32, but not reliably faster than fp32 (``torch._int_mm`` packs the int8 weight on every call, while
``quantize_dynamic``'s fbgemm weights are packed once: faster, with 4x our logit error).

On CUDA both modes go through torchao (``pip install 'pixelrefer[quant]'``): ``int8`` is its dynamic int8
activation x int8 weight config (the same per-token / per-channel scheme), ``int4`` its weight-only int4 with
groups of 128 on the tinygemm kernel (needs bfloat16). :func:`check_quantize` says what cannot be honoured
(unknown mode, int4 off CUDA, torchao missing) before anything is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pixelrefer.errors import ConfigError

logger = logging.getLogger(__name__)

MODES = ("int8", "int4")
INT4_GROUP_SIZE = 128
INSTALL_HINT = "pip install 'pixelrefer[quant]'"


def check_quantize(mode: str | None, device: torch.device, dtype: torch.dtype) -> str | None:
    """``mode`` normalised (``None``/``"none"`` -> ``None``), or a :class:`ConfigError` saying why it cannot run here."""
    if mode is None or str(mode).lower() in ("none", ""):
        return None
    mode = str(mode).lower()
    if mode not in MODES:
        raise ConfigError(f"unknown quantize mode {mode!r}; use one of {', '.join(MODES)} (or none)")
    if mode == "int4" and device.type != "cuda":
        raise ConfigError(f"quantize='int4' (weight-only, torchao's tinygemm kernel) needs a CUDA device, not "
                          f"{device.type!r}; use quantize='int8' on {device.type}")
    if mode == "int4" and dtype != torch.bfloat16:
        raise ConfigError(f"quantize='int4' needs dtype bfloat16 (the kernel's activation type), not {dtype}")
    if device.type == "cuda" and importlib.util.find_spec("torchao") is None:
        raise ConfigError(f"quantize={mode!r} on CUDA uses torchao, which is not installed: {INSTALL_HINT}")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"quantize={mode!r} runs on cpu or cuda, not {device.type!r}")
    return mode


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output channel and x quantised to int8 per token at each call."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.register_buffer("weight", weight)  # (out, in) int8; .t() is the layout _int_mm reads fastest
        self.register_buffer("scale", scale)  # (out,) float32
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
        q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(q, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        if rows.shape[0] == 0:
            return x.new_zeros(*x.shape[:-1], self.out_features)
        token_scale = (rows.abs().amax(dim=1, keepdim=True) / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
        q = torch.round(rows / token_scale).to(torch.int8)  # |rows / scale| <= 127 by construction
        y = torch._int_mm(q, self.weight.t()).float().mul_(token_scale).mul_(self.scale)
        if self.bias is not None:
            y = y.add_(self.bias)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_model` did: the mode, the backend, how many linears, bytes of weights before/after."""

    mode: str
    backend: str
    linears: int
    bytes_before: int
    bytes_after: int


def model_bytes(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (tied weights counted once; torchao tensors by their storage)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        inner = [getattr(tensor, n) for n in getattr(tensor, "tensor_data_names", ())] or [tensor]
        total += sum(t.numel() * t.element_size() for t in inner if isinstance(t, torch.Tensor))
    return total


def _targets(model: nn.Module, vision: bool) -> list[str]:
    """Qualified names of the linears to quantise (LLM layers, lm_head, and the vision tower when asked)."""
    roots = ["language_model.", "lm_head"] + (["vision_model."] if vision else [])
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and any(name == r or name.startswith(r) for r in roots)]


def _replace(model: nn.Module, names: list[str], make: Callable[[nn.Linear], nn.Module]) -> None:
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(getattr(parent, child)))


def quantize_model(model: nn.Module, mode: str, device: torch.device, vision: bool = False) -> QuantizeReport:
    """Quantise ``model``'s linears in place; ``device`` is where it runs (``mode`` is checked as
    :func:`check_quantize` does)."""
    mode = check_quantize(mode, device, next(model.parameters()).dtype)
    if mode is None:
        raise ConfigError("quantize_model needs a mode; None means: do not call it")
    names = _targets(model, vision)
    before = model_bytes(model)
    if device.type == "cpu":
        _replace(model, names, Int8Linear.from_linear)
        backend = "pixelrefer Int8Linear (torch._int_mm)"
    else:
        _torchao_quantize(model, mode, set(names))
        backend = "torchao"
    report = QuantizeReport(mode, backend, len(names), before, model_bytes(model))
    logger.info("quantised %d linears to %s with %s: %.1f -> %.1f MB", report.linears, mode, backend,
                before / 2**20, report.bytes_after / 2**20)
    return report


def _torchao_quantize(model: nn.Module, mode: str, names: set[str]) -> None:
    try:
        from torchao.quantization import (
            Int4WeightOnlyConfig,
            Int8DynamicActivationInt8WeightConfig,
            quantize_,
        )
    except ImportError as exc:
        raise ConfigError(f"quantize={mode!r} on CUDA uses torchao, which cannot be imported ({exc}): "
                          f"{INSTALL_HINT}") from exc
    if mode == "int4":
        config = Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d")
    else:
        config = Int8DynamicActivationInt8WeightConfig()
    head, embed = getattr(model, "lm_head", None), model.get_input_embeddings()
    if head is not None and "lm_head" in names and head.weight is embed.weight:
        # torchao swaps the weight tensor: untie first so the input embedding keeps its float table
        head.weight = nn.Parameter(head.weight.detach().clone())
    quantize_(model, config, filter_fn=lambda module, fqn: fqn in names)
