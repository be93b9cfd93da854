"""``pixelrefer train --dry-run``: the resolved plan of a run, with the model built on the meta device (no
weights allocated, so a 7B plan costs nothing): parameters per module group, what trains, the batch per step,
and the memory each device needs for weights, gradients and optimizer state under the chosen strategy.

Memory model (bytes per parameter, P all parameters, T trainable, N processes; activations not included,
gradient checkpointing keeps those to one layer's worth per micro-batch): weights are fp32 (4P) with bf16
autocast, or bf16 (2P) plus fp32 master copies (4T) when FSDP2/DeepSpeed run bf16; gradients 4T (2T in
bf16 under DeepSpeed); AdamW moments 8T. DDP/single keep all of it on every device; FSDP2 and ZeRO-3 divide
everything by N; ZeRO-2 divides gradients, moments and master weights by N but keeps the working weights
whole. CPU offload moves the optimizer part (and ZeRO-3 parameters) to host memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pixelrefer.train.config import TrainConfig
from pixelrefer.train.stages import MODULE_GROUPS, apply_stage, group_of

GIB = 2**30


@dataclass
class Plan:
    architecture: str
    strategy: str
    processes: int
    micro_batch: int
    grad_accum: int
    global_batch: int
    max_visual_tokens: int
    params: dict[str, int] = field(default_factory=dict)  # per module group
    trainable: dict[str, int] = field(default_factory=dict)
    lrs: dict[str, float | None] = field(default_factory=dict)
    memory_gib: dict[str, float] = field(default_factory=dict)  # per device (and host, with offload)

    def lines(self) -> list[str]:
        total, train = sum(self.params.values()), sum(self.trainable.values())
        out = [f"model: {self.architecture}",
               f"strategy: {self.strategy} on {self.processes} process(es)",
               (f"batch: {self.micro_batch} per device x {self.grad_accum} accumulation x {self.processes} "
               f"processes = {self.global_batch} samples per optimizer step "
               f"(visual tokens per sample <= {self.max_visual_tokens})"),
               f"parameters: {total:,} ({train:,} trainable, {100 * train / max(total, 1):.1f} %)"]
        for group in MODULE_GROUPS:
            if self.params.get(group):
                lr = self.lrs.get(group)
                out.append(f"  {group:<17}{self.params[group]:>15,}  trainable {self.trainable.get(group, 0):>15,}"
                           f"  lr {'frozen' if lr is None else f'{lr:g}'}")
        out.append("memory per device, without activations: " +
                   ", ".join(f"{k} {v:.2f} GiB" for k, v in self.memory_gib.items()))
        return out


QWEN2_VOCAB = 151669  # Qwen2's vocabulary with <REGION>: the default when neither a tokenizer nor its size is known


class _PlanTokenizer:
    """Stands in for a tokenizer when a preset is planned without one: only its length changes the plan."""

    eos_token_id = pad_token_id = 0

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    def convert_tokens_to_ids(self, token: str) -> int:
        return 0


def meta_model(cfg: TrainConfig, vocab_size: int | None = None):
    """The run's model on the meta device: ``init_from``'s config.json if it is on disk, else the preset sized for
    the run's tokenizer (its folder if built, else ``vocab_size``, the size a recipe will train it to)."""
    from pixelrefer.config import PixelReferConfig
    from pixelrefer.model.modeling import PixelReferForConditionalGeneration

    config, source = None, f"preset {cfg.model.preset}"
    if cfg.model.init_from and (Path(cfg.model.init_from) / "config.json").is_file():
        import json

        from pixelrefer.model.convert import config_from_official, is_official_config

        folder = Path(cfg.model.init_from)
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config = config_from_official(raw, folder) if is_official_config(raw) else PixelReferConfig.from_pretrained(folder)
        source = str(folder)
    if config is None:
        from pixelrefer.presets import preset_config
        from pixelrefer.train.run import load_tokenizer

        try:
            tokenizer = load_tokenizer(cfg)
        except FileNotFoundError:
            tokenizer = _PlanTokenizer(vocab_size or QWEN2_VOCAB)
        config = preset_config(cfg.model.preset, tokenizer, **cfg.model.overrides)
    with torch.device("meta"):
        model = PixelReferForConditionalGeneration(config)
    return model, f"{config.variant} ({source})"


def memory(params: int, trainable: int, strategy: str, processes: int, bf16: bool,
           offload_optimizer: bool, offload_param: bool) -> dict[str, float]:
    """Per-device (and host) GiB for weights, gradients and optimizer state; see the module docstring."""
    n = max(processes, 1)
    sharded = strategy in ("fsdp2", "deepspeed_zero3")
    lowp = bf16 and strategy != "single" and strategy != "ddp"
    weights = (2 if lowp else 4) * params
    master = 4 * trainable if lowp else 0
    grads = (2 if lowp and strategy.startswith("deepspeed") else 4) * trainable
    moments = 8 * trainable
    if sharded:
        weights, master, grads, moments = weights / n, master / n, grads / n, moments / n
    elif strategy == "deepspeed_zero2":
        master, grads, moments = master / n, grads / n, moments / n
    host = 0.0
    if offload_optimizer:
        host += master + moments
        master = moments = 0
    if offload_param:
        host += weights
        weights = 0
    out = {"device": (weights + master + grads + moments) / GIB}
    if host:
        out["host"] = host / GIB
    return out


def plan_run(cfg: TrainConfig, processes: int, vocab_size: int | None = None) -> Plan:
    from pixelrefer.train.loop import resolve_stage
    from pixelrefer.train.lora import apply_lora, trainable_predicate

    cfg = cfg.for_processes(processes)
    model, architecture = meta_model(cfg, vocab_size)
    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora)
    stage = resolve_stage(cfg)
    apply_stage(model, stage, trainable_predicate(model))
    params: dict[str, int] = {}
    trainable: dict[str, int] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():  # tied weights once
        if id(p) in seen:
            continue
        seen.add(id(p))
        group = group_of(name)
        params[group] = params.get(group, 0) + p.numel()
        if p.requires_grad:
            trainable[group] = trainable.get(group, 0) + p.numel()
    bf16 = cfg.precision == "bf16"
    mem = memory(sum(params.values()), sum(trainable.values()), cfg.strategy, processes, bf16,
                 cfg.deepspeed.offload_optimizer != "none", cfg.deepspeed.offload_param != "none")
    return Plan(architecture, cfg.strategy, processes, cfg.batch_size, cfg.grad_accum,
                cfg.batch_size * cfg.grad_accum * processes, int(model.config.max_visual_tokens), params, trainable,
                dict(stage.lrs), mem)
