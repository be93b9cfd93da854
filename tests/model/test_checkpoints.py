import shutil

import pytest
import torch
from safetensors.torch import load_file

from pixelrefer import GenerationConfig, PixelRefer
from pixelrefer.model.convert import CheckpointError, map_official_key


def _copy_without_weights(src, dst):
    """A checkpoint folder beside a copy of the vision tower folder its config.json names (official layout)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors"))
    tower = src.parent / "VL3-SigLIP-NaViT-tiny"
    if not (dst.parent / tower.name).exists():
        shutil.copytree(tower, dst.parent / tower.name)


def test_official_bin_shards_load_like_safetensors(official_tiny, tmp_path):
    src = official_tiny / "pixelrefer-tiny"
    state = load_file(str(src / "model.safetensors"))
    _copy_without_weights(src, tmp_path / "ckpt")
    keys = sorted(state)
    half = len(keys) // 2
    torch.save({k: state[k] for k in keys[:half]}, tmp_path / "ckpt/pytorch_model-00001-of-00002.bin")
    torch.save({k: state[k] for k in keys[half:]}, tmp_path / "ckpt/pytorch_model-00002-of-00002.bin")
    a = PixelRefer.from_pretrained(src, device="cpu", dtype="float32", segmenter=None)
    b = PixelRefer.from_pretrained(tmp_path / "ckpt", device="cpu", dtype="float32", segmenter=None)
    for (ka, va), (kb, vb) in zip(sorted(a.model.state_dict().items()), sorted(b.model.state_dict().items())):
        assert ka == kb and torch.equal(va, vb)


def test_official_checkpoint_with_unknown_or_missing_key_names_it(official_tiny, tmp_path):
    from safetensors.torch import save_file

    src = official_tiny / "pixelrefer-tiny"
    state = load_file(str(src / "model.safetensors"))
    _copy_without_weights(src, tmp_path / "extra")
    save_file({**state, "model.region_encoder.surprise.weight": torch.zeros(2)}, str(tmp_path / "extra/model.safetensors"))
    with pytest.raises(CheckpointError, match="surprise"):
        PixelRefer.from_pretrained(tmp_path / "extra", device="cpu", segmenter=None)
    _copy_without_weights(src, tmp_path / "missing")
    state.pop("model.region_encoder.pos_linear.weight")
    save_file(state, str(tmp_path / "missing/model.safetensors"))
    with pytest.raises(CheckpointError, match="object_tokenizer.pos_proj.weight"):
        PixelRefer.from_pretrained(tmp_path / "missing", device="cpu", segmenter=None)


def test_key_map_is_explicit_per_variant():
    assert map_official_key("model.region_encoder.feat_linear.0.weight", "full") == "object_tokenizer.mlp.0.weight"
    assert map_official_key("model.vision_encoder.vision_encoder.post_layernorm.bias", "lite") == "vision_model.post_layernorm.bias"
    assert map_official_key("model.region_encoder.fusion_attention_local.in_proj_weight", "lite") == "oci.local_attn.in_proj_weight"
    assert map_official_key("model.mm_projector.readout.0.weight", "lite") is None  # present in Lite files, unused
    assert map_official_key("model.mm_projector.readout.0.weight", "full") == "projector.readout.0.weight"


def test_stream_yields_the_same_text_as_ask(official_tiny):
    import numpy as np

    pr = PixelRefer.from_pretrained(official_tiny / "pixelrefer-tiny", device="cpu", dtype="float32", segmenter=None)
    img = np.full((112, 112, 3), 120, np.uint8)
    mask = np.zeros((112, 112), bool)
    mask[30:70, 20:90] = True
    g = GenerationConfig(max_new_tokens=6)
    pieces = list(pr.stream(img, [mask], "What is <region>?", g))
    assert "".join(pieces).strip() == pr.ask(img, [mask], "What is <region>?", g).text
