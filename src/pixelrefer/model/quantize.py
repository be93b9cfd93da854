"""Quantised inference: ``int8`` on CPU and GPU, ``int4`` weight-only on GPU, applied in place after loading.

What is quantised: every ``nn.Linear`` of the LLM (attention and MLP projections of each Qwen2 layer) and
``lm_head``; with ``vision=True`` also those of the vision tower. Embeddings, norms, the projector, the object
tokenizer and OCI stay in the load dtype. Nothing quantised is written to disk: quantising a loaded model takes
about a second at the 2B shape.

``int8`` on CPU is :class:`Int8Linear`: weights symmetric int8 per output channel, packed once for torch's fbgemm
kernel (``torch.ops.quantized.linear_dynamic``), activations int8 per token at each call. fbgemm quantises its
input with one scale per tensor; dividing each token (row) by its own max |x| first and multiplying the output row
back makes that one scale a per-token one (``(x / a) W^T * a = x W^T``), so an outlier token costs the other tokens
no precision (``torch.ao``'s ``quantize_dynamic`` uses the per-tensor scale as is, at 7 bits: 3x our logit error).
On CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) the kernel multiplies u8 x s8 pairs into saturating int16
sums, which 8-bit activations x 8-bit weights overflow; :func:`weight_qmax` probes the kernel once and gives
weights 7 bits (+-63) where it saturates, 8 bits (+-127) where it does not. Measured by
``benchmarks/bench_int8_kernels.py`` (one linear) and ``benchmarks/bench_quantize.py`` (the 2B LLM shape, the
trained models). fbgemm is x86 only: elsewhere ``int8`` on CPU is a :class:`ConfigError` before loading.

On CUDA both modes go through torchao (``pip install 'pixelrefer[quant]'``): ``int8`` is its dynamic int8
activation x int8 weight config (the same per-token / per-channel scheme), ``int4`` its weight-only int4 with
groups of 128 on the tinygemm kernel (needs bfloat16). :func:`check_quantize` says what cannot be honoured
(unknown mode, int4 off CUDA, torchao missing) before anything is loaded.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from pixelrefer.errors import ConfigError

logger = logging.getLogger(__name__)

MODES = ("int8", "int4")
INT4_GROUP_SIZE = 128
INSTALL_HINT = "pip install 'pixelrefer[quant]'"
FBGEMM = "fbgemm"  # torch's x86 int8 engine: the CPU int8 kernel


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
    if device.type == "cpu" and FBGEMM not in _cpu_engines():
        raise ConfigError(f"quantize={mode!r} on CPU uses torch's fbgemm int8 kernel (x86 only), which this torch "
                          f"build lacks (engines: {', '.join(_cpu_engines())})")
    if device.type == "cuda" and importlib.util.find_spec("torchao") is None:
        raise ConfigError(f"quantize={mode!r} on CUDA uses torchao, which is not installed: {INSTALL_HINT}")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"quantize={mode!r} runs on cpu or cuda, not {device.type!r}")
    return mode


def _cpu_engines() -> list[str]:
    return list(torch.backends.quantized.supported_engines)


@contextlib.contextmanager
def _fbgemm() -> Iterator[None]:
    """torch's quantized engine set to fbgemm while weights are packed (the packed weight then carries its kernel)."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = FBGEMM
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates quantized tensors; fbgemm's prepack still takes one
            warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
            yield
    finally:
        torch.backends.quantized.engine = previous


def _pack(q: torch.Tensor, scale: torch.Tensor) -> torch.ScriptObject:
    """fbgemm's packed form of the (out, in) int8 weight ``q`` with per-output-channel ``scale``."""
    zero = torch.zeros(q.shape[0], dtype=torch.long)
    with _fbgemm():
        weight = torch._make_per_channel_quantized_tensor(q, scale.double(), zero, 0)
        return torch.ops.quantized.linear_prepack(weight, None)


@functools.cache
def weight_qmax() -> int:
    """127, or 63 where fbgemm's kernel saturates 8-bit x 8-bit products (no VNNI): one all-max product probed."""
    width = 256
    packed = _pack(torch.full((8, width), 127, dtype=torch.int8), torch.full((8,), 1 / 127))
    exact = torch.ops.quantized.linear_dynamic(torch.ones(4, width), packed, False)
    qmax = 127 if bool(((exact - width).abs() < 1).all()) else 63
    logger.debug("fbgemm int8 kernel %s: weights quantised to +-%d", "exact" if qmax == 127 else "saturates", qmax)
    return qmax


def per_channel_int8(w: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 of an (out, in) float weight, one scale per output channel: ``(q, scale)``, |q| <= ``qmax``."""
    scale = (w.abs().amax(dim=1) / qmax).clamp_min(torch.finfo(torch.float32).tiny)
    return torch.round(w / scale[:, None]).clamp_(-qmax, qmax).to(torch.int8), scale


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output channel (prepacked for fbgemm) and x int8 per token at each call."""

    def __init__(self, packed: torch.ScriptObject, in_features: int, out_features: int, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.packed = packed  # fbgemm's packed int8 weight and scales: not a parameter or buffer (see packed_bytes)
        self.register_buffer("bias", bias)  # float32, added after the token scales (fbgemm would scale it too)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scale = per_channel_int8(linear.weight.detach().float().cpu(), weight_qmax())
        bias = None if linear.bias is None else linear.bias.detach().float().cpu().clone()
        return cls(_pack(q, scale), linear.in_features, linear.out_features, bias)

    @property
    def packed_bytes(self) -> int:
        """Bytes fbgemm holds for the weight: int8 values, a float scale and an int32 column offset per channel."""
        return self.out_features * (self.in_features + 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # few passes over the data, each one parallel region: on a shared CPU every region waits for its threads
        rows = x.reshape(-1, self.in_features).float()
        token_scale = torch.linalg.vector_norm(rows, float("inf"), dim=1, keepdim=True)
        token_scale = token_scale.clamp_min_(torch.finfo(torch.float32).tiny)
        y = torch.ops.quantized.linear_dynamic(rows / token_scale, self.packed, False)
        y = y.mul_(token_scale) if self.bias is None else torch.addcmul(self.bias, y, token_scale)
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
    """Bytes of every distinct parameter and buffer (tied weights counted once; torchao tensors by their storage),
    plus the packed weights of every :class:`Int8Linear`."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        inner = [getattr(tensor, n) for n in getattr(tensor, "tensor_data_names", ())] or [tensor]
        total += sum(t.numel() * t.element_size() for t in inner if isinstance(t, torch.Tensor))
    return total + sum(m.packed_bytes for m in model.modules() if isinstance(m, Int8Linear))


def linear_targets(model: nn.Module, vision: bool) -> list[str]:
    """Qualified names of the linears to quantise (LLM layers, lm_head, and the vision tower when asked)."""
    roots = ["language_model.", "lm_head"] + (["vision_model."] if vision else [])
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and any(name == r or name.startswith(r) for r in roots)]


def replace_linears(model: nn.Module, names: list[str], make: Callable[[nn.Linear], nn.Module]) -> None:
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
    names = linear_targets(model, vision)
    before = model_bytes(model)
    if device.type == "cpu":
        replace_linears(model, names, Int8Linear.from_linear)
        backend = f"pixelrefer Int8Linear (fbgemm, weights +-{weight_qmax()})"
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
