"""transformers-style loading: save_pretrained / from_pretrained round trips, dtype, device_map, attention
implementation, strictness, official folders, and the Auto-class registration."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from pixelrefer.errors import CheckpointError
from pixelrefer.model.loading import load_official
from pixelrefer.model.modeling import PixelReferForConditionalGeneration


def _logits(model, batch):
    kwargs = batch.as_kwargs()
    if kwargs.get("visual") is not None:
        kwargs["visual"] = kwargs["visual"].to(model.device, model.dtype)
    with torch.no_grad():
        return model(**kwargs).logits.float()


@pytest.fixture
def saved(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    return tmp_path


@pytest.fixture
def batch(tiny, scene):
    img, m1, m2 = scene
    return tiny.processor(img, [m1, m2], "Compare <region> with <region>.")


def test_round_trip_gives_identical_weights_and_logits(tiny, saved, batch, one_thread):
    again = PixelReferForConditionalGeneration.from_pretrained(saved)
    assert not again.training and again.dtype == torch.float32
    for (ka, va), (kb, vb) in zip(sorted(tiny.model.state_dict().items()), sorted(again.state_dict().items())):
        assert ka == kb and torch.equal(va, vb), ka
    assert torch.equal(_logits(tiny.model, batch), _logits(again, batch))


def test_bfloat16_on_the_cpu_device_map(tiny, saved, batch, one_thread):
    model = PixelReferForConditionalGeneration.from_pretrained(saved, dtype=torch.bfloat16, device_map="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    saved_params = dict(tiny.model.named_parameters())
    assert all(torch.equal(p, saved_params[n].to(torch.bfloat16)) for n, p in model.named_parameters())
    assert {b.dtype for b in model.buffers()} == {torch.float32}  # rotary tables stay exact
    low, ref = _logits(model, batch), _logits(tiny.model, batch)
    assert torch.isfinite(low).all()
    kwargs = batch.as_kwargs()
    kwargs["visual"] = kwargs["visual"].to("cpu", torch.bfloat16)
    with torch.no_grad():
        out = model.generate(**kwargs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (1, batch.input_ids.shape[1] + 3)
    cosine = torch.nn.functional.cosine_similarity(low.flatten(), ref.flatten(), dim=0)
    assert cosine > 0.95, cosine  # measured 0.99: the same model rounded to bf16 (an unrelated one scores near 0)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_vision_tower_and_the_llm(tiny, saved, batch, impl, one_thread):
    model = PixelReferForConditionalGeneration.from_pretrained(saved, attn_implementation=impl)
    assert model.config._attn_implementation == impl
    assert model.vision_model.config._attn_implementation == impl
    assert model.language_model.config._attn_implementation == impl
    assert model.vision_model.encoder.layers[0].self_attn.config._attn_implementation == impl
    torch.testing.assert_close(_logits(model, batch), _logits(tiny.model, batch), atol=1e-4, rtol=1e-4)


def test_loading_is_strict(saved):
    state = load_file(str(saved / "model.safetensors"))
    state.pop("object_tokenizer.pos_proj.weight")
    state["language_model.norm.weight"] = torch.zeros(3)
    state["surprise.weight"] = torch.zeros(2)
    save_file(state, str(saved / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        PixelReferForConditionalGeneration.from_pretrained(saved)
    message = str(err.value)
    assert "object_tokenizer.pos_proj.weight" in message and "surprise.weight" in message
    assert "language_model.norm.weight (checkpoint (3,), model (64,))" in message
    with pytest.raises(CheckpointError, match="strictly"):
        PixelReferForConditionalGeneration.from_pretrained(saved, ignore_mismatched_sizes=True)


@pytest.mark.parametrize("name", ["pixelrefer-tiny", "pixelreferlite-tiny"])
def test_official_folder_loads_through_from_pretrained(official_tiny, name):
    direct = load_official(official_tiny / name, torch.device("cpu"), torch.float32)
    model = PixelReferForConditionalGeneration.from_pretrained(official_tiny / name, attn_implementation="eager")
    assert model.config.variant == direct.config.variant and model.config.region_geometry == "official"
    assert model.vision_model.config._attn_implementation == "eager"
    ours, theirs = model.state_dict(), direct.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


AUTO_SCRIPT = """
import sys
import pixelrefer
assert "torch" not in sys.modules, "a bare `import pixelrefer` must stay light"
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText
pixelrefer.PixelReferConfig
assert type(AutoConfig.from_pretrained(sys.argv[1])).__name__ == "PixelReferConfig"
pixelrefer.PixelReferForConditionalGeneration
for auto in (AutoModel, AutoModelForImageTextToText, AutoModelForCausalLM):
    model = auto.from_pretrained(sys.argv[1], dtype="bfloat16")
    assert type(model).__name__ == "PixelReferForConditionalGeneration" and str(model.dtype) == "torch.bfloat16"
print("ok")
"""


def test_auto_classes_resolve_the_model_type_in_a_fresh_process(saved):
    assert json.loads((saved / "config.json").read_text())["model_type"] == "pixelrefer"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(AUTO_SCRIPT), str(saved)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
