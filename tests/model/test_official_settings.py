"""Every setting an official checkpoint folder holds is read from it; values we cannot honour name the field.

Variants of the official-tiny fixture are made by editing copies of its JSON files (the weights stay the same).
"""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrefer.errors import CheckpointError, PromptError
from pixelrefer.model.convert import config_from_official
from pixelrefer.model.loading import load_checkpoint
from pixelrefer.processing.image import ImageProcessorSettings, smart_resize, to_patches
from pixelrefer.processing.processor import Media, PixelReferProcessor

CUSTOM_PREPROCESSOR = {"image_mean": [0.4, 0.45, 0.5], "image_std": [0.2, 0.25, 0.3], "rescale_factor": 1 / 250,
                       "resample": 2, "min_pixels": 4000}


def _variant(official_tiny, tmp_path, name="pixelrefer-tiny", config=None, preprocessor=None, weights=True):
    """A copy of an official-tiny checkpoint (and of the tower folder beside it) with edited JSON fields."""
    dst = tmp_path / name
    shutil.copytree(official_tiny / name, dst, ignore=None if weights else shutil.ignore_patterns("*.safetensors"))
    tower = tmp_path / "VL3-SigLIP-NaViT-tiny"
    if not tower.exists():
        shutil.copytree(official_tiny / "VL3-SigLIP-NaViT-tiny", tower)
    for path, edits in ((dst / "config.json", config), (tower / "preprocessor_config.json", preprocessor)):
        if edits:
            data = json.loads(path.read_text())
            for key, value in edits.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            path.write_text(json.dumps(data))
    return dst


def _config(folder):
    return config_from_official(json.loads((folder / "config.json").read_text()), folder)


def _processor(folder):
    from transformers import PreTrainedTokenizerFast

    return PixelReferProcessor(PreTrainedTokenizerFast.from_pretrained(folder), _config(folder))


def test_fixture_settings_are_read_from_the_tower_folder(official_tiny):
    config = _config(official_tiny / "pixelrefer-tiny")
    assert config.image_processor == ImageProcessorSettings()  # the fixture's file holds the released values
    assert (config.mask_num, config.spatial_merge_size, config.max_visual_tokens) == (32, 2, 8192)
    assert config.vision_config.hidden_size == 32 and config.vision_config.layer_norm_eps == 1e-6
    assert config.text_config.rms_norm_eps == 1e-6 and config.text_config.rope_parameters["rope_theta"] == 1e6
    assert not config.tie_word_embeddings and _config(official_tiny / "pixelreferlite-tiny").tie_word_embeddings


def test_preprocessor_config_sets_the_pixels(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, preprocessor=CUSTOM_PREPROCESSOR, weights=False)
    settings = _config(folder).image_processor
    assert settings == ImageProcessorSettings(**CUSTOM_PREPROCESSOR)
    processor = _processor(folder)
    rng = np.random.default_rng(0)
    image = (rng.random((50, 60, 3)) * 255).astype(np.uint8)
    sample = processor.encode(Media(frames=[image]), [], [{"role": "user", "content": "<image>\nWhat?"}])
    h, w = smart_resize(50, 60, 14, 4000, 8192 * 196)
    assert h * w >= 4000 and sample.media_grid == [(1, h // 14, w // 14)]
    resized = np.asarray(Image.fromarray(image).resize((w, h), resample=Image.Resampling.BILINEAR))
    x = (resized.astype(np.float64) / 250).astype(np.float32)
    chw = np.stack([(x[..., c] - np.float32(CUSTOM_PREPROCESSOR["image_mean"][c])) / np.float32(CUSTOM_PREPROCESSOR["image_std"][c])
                    for c in range(3)])
    np.testing.assert_array_equal(sample.media_patches, to_patches(chw, 1))


def test_preprocessor_config_falls_back_to_the_checkpoint_folder(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, weights=False)
    (tmp_path / "VL3-SigLIP-NaViT-tiny/preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="preprocessor_config.json"):
        _config(folder)
    data = json.loads((official_tiny / "VL3-SigLIP-NaViT-tiny/preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**data, **CUSTOM_PREPROCESSOR}))
    assert _config(folder).image_processor == ImageProcessorSettings(**CUSTOM_PREPROCESSOR)


def test_model_fields_are_read_from_config_json(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, weights=False, config={
        "rms_norm_eps": 1e-5, "rope_theta": 1e4, "mask_num": 16, "mm_max_length": None, "spatial_merge_size": 2,
    })
    tower_config = tmp_path / "VL3-SigLIP-NaViT-tiny/config.json"
    tower_config.write_text(json.dumps({**json.loads(tower_config.read_text()), "layer_norm_eps": 1e-4}))
    config = _config(folder)
    assert config.text_config.rms_norm_eps == 1e-5 and config.text_config.rope_parameters["rope_theta"] == 1e4
    assert config.mask_num == 16 and config.vision_config.layer_norm_eps == 1e-4
    assert config.max_visual_tokens == 9477 // 4  # the official wrapper's default without mm_max_length
    assert (config.oci_num_heads, config.oci_layer_norm_eps) == (8, 1e-5)  # official constants


def test_loaded_modules_use_the_checkpoint_epsilons(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, config={"rms_norm_eps": 1e-5})
    tower_config = tmp_path / "VL3-SigLIP-NaViT-tiny/config.json"
    tower_config.write_text(json.dumps({**json.loads(tower_config.read_text()), "layer_norm_eps": 1e-4}))
    model, _ = load_checkpoint(folder, torch.device("cpu"), torch.float32)
    assert model.language_model.norm.variance_epsilon == 1e-5
    assert model.vision_model.post_layernorm.eps == 1e-4
    assert model.vision_model.encoder.layers[0].layer_norm1.eps == 1e-4


def test_placeholder_ids_come_from_the_tokenizer(official_tiny, tmp_path, caplog):
    folder = _variant(official_tiny, tmp_path, weights=False, config={"region_token_index": 400})
    processor = _processor(folder)
    assert processor.region_id == processor.config.region_token_id == 486
    assert "region_token_index" in caplog.text
    for name in ("tokenizer.json", "tokenizer_config.json", "added_tokens.json"):  # the tokenizer files decide
        data = json.loads((folder / name).read_text())
        text = json.dumps(data).replace("<REGION>", "<OBJECT>")
        (folder / name).write_text(text)
    with pytest.raises(CheckpointError, match="<REGION>"):
        _config(folder)


@pytest.mark.parametrize("config, preprocessor, field", [
    ({"mm_projector_type": "linear"}, None, "mm_projector_type"),
    ({"mm_projector_type": None}, None, "mm_projector_type"),
    ({"use_token_compression": False}, None, "use_token_compression"),
    ({"image_aspect_ratio": "pad"}, None, "image_aspect_ratio"),
    ({"mm_vision_encoder": "openai/clip-vit-large-patch14"}, None, "mm_vision_encoder"),
    ({"mm_hidden_size": 48}, None, "mm_hidden_size"),
    ({"is_alignment": True}, None, "is_alignment"),
    ({"spatial_merge_size": None}, None, "spatial_merge_size"),
    ({"mask_num": None}, None, "mask_num"),
    (None, {"resample": 7}, "resample"),
    (None, {"do_resize": False}, "do_resize"),
    (None, {"patch_size": 16}, "patch_size"),
    (None, {"image_mean": [0.5, 0.5]}, "image_mean"),
])
def test_unsupported_values_name_the_field(official_tiny, tmp_path, config, preprocessor, field):
    folder = _variant(official_tiny, tmp_path, config=config, preprocessor=preprocessor, weights=False)
    with pytest.raises(CheckpointError, match=field):
        _config(folder)


def test_missing_mean_and_std_take_the_official_class_defaults(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, preprocessor={"image_mean": None, "image_std": None}, weights=False)
    settings = _config(folder).image_processor
    assert settings.image_mean == (0.48145466, 0.4578275, 0.40821073)  # DAMOVLImageProcessor: OpenAI CLIP values
    assert settings.image_std == (0.26862954, 0.26130258, 0.27577711)


def test_unsupported_tower_shape_names_the_field(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, weights=False)
    tower_config = tmp_path / "VL3-SigLIP-NaViT-tiny/config.json"
    tower_config.write_text(json.dumps({**json.loads(tower_config.read_text()), "patch_size": 16}))
    with pytest.raises(CheckpointError, match="patch_size"):
        _config(folder)


def test_save_and_load_keep_the_checkpoint_settings(official_tiny, tmp_path):
    folder = _variant(official_tiny, tmp_path, preprocessor=CUSTOM_PREPROCESSOR, config={"rms_norm_eps": 1e-5})
    model, tokenizer = load_checkpoint(folder, torch.device("cpu"), torch.float32)
    model.save_pretrained(tmp_path / "ours")
    tokenizer.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours/config.json").read_text())
    assert saved["image_processor"]["image_mean"] == CUSTOM_PREPROCESSOR["image_mean"]
    again, tokenizer2 = load_checkpoint(tmp_path / "ours", torch.device("cpu"), torch.float32)
    for field in ("image_processor", "mask_num", "spatial_merge_size", "max_visual_tokens", "image_token_id",
                  "region_token_id", "oci_layer_norm_eps", "tie_word_embeddings", "compression_dtype", "max_crop_patches"):
        assert getattr(again.config, field) == getattr(model.config, field), field
    assert again.config.text_config.rms_norm_eps == 1e-5
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    turn = [{"role": "user", "content": "What?"}]
    a = PixelReferProcessor(tokenizer, model.config).encode(Media(frames=[image]), [], turn)
    b = PixelReferProcessor(tokenizer2, again.config).encode(Media(frames=[image]), [], turn)
    np.testing.assert_array_equal(a.media_patches, b.media_patches)
    assert a.input_ids == b.input_ids


# ------------------------------------------------------------------------------------------------- placement
def _ids(tokenizer, *pieces):
    """Token ids of text pieces and (token id, count) runs, each text piece tokenised on its own."""
    out = []
    for piece in pieces:
        out += [piece[0]] * piece[1] if isinstance(piece, tuple) else tokenizer(piece, add_special_tokens=False)["input_ids"]
    return out


def _region(h, w):
    from pixelrefer.regions import Region

    mask = np.zeros((h, w), bool)
    mask[10:40, 20:60] = True
    return Region.from_frames({0: mask})


def test_image_tag_mid_sentence_keeps_position_and_official_spacing(official_tiny):
    processor = _processor(official_tiny / "pixelrefer-tiny")
    image = (np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8)
    text = "Look at this <image> and tell me about <region>, please. "
    sample = processor.encode(Media(frames=[image]), [_region(56, 84)], [{"role": "user", "content": text}])
    n_img, n_reg = 4 * 6, sample.crops[0].num_tokens
    expected = _ids(processor.tokenizer, "<|im_start|>user\nLook at this", (processor.image_id, n_img),
                    "\nand tell me about [", (processor.region_id, n_reg), "], please.<|im_end|>\n<|im_start|>assistant\n")
    assert sample.input_ids == expected
    default = processor.encode(Media(frames=[image]), [_region(56, 84)], [{"role": "user", "content": "Tell me about <region>."}])
    assert default.input_ids[:3 + n_img] == _ids(processor.tokenizer, "<|im_start|>user\n", (processor.image_id, n_img))


def test_video_tag_mid_sentence_keeps_position(official_tiny):
    processor = _processor(official_tiny / "pixelrefer-tiny")
    frames = [np.full((56, 56, 3), v, np.uint8) for v in (10, 200)]
    sample = processor.encode(Media(frames=frames, timestamps=[0.0, 1.0]), [],
                              [{"role": "user", "content": "In this clip <video> what happens?"}])
    img = processor.image_id
    assert sample.input_ids == _ids(processor.tokenizer, "<|im_start|>user\nIn this clipTime 0.0s:", (img, 4), ",Time 1.0s:",
                                    (img, 4), "\nwhat happens?<|im_end|>\n<|im_start|>assistant\n")


def test_media_tag_in_a_later_turn_and_twice(official_tiny):
    processor = _processor(official_tiny / "pixelrefer-tiny")
    image = np.full((56, 56, 3), 90, np.uint8)
    turns = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Now <image> this."}]
    ids = processor.encode(Media(frames=[image]), [], turns).input_ids
    first_image = ids.index(processor.image_id)
    assert processor.tokenizer.decode(ids[:first_image]).endswith("<|im_start|>user\nNow")
    with pytest.raises(PromptError):
        processor.encode(Media(frames=[image]), [], [{"role": "user", "content": "<image> a"}, {"role": "user", "content": "<image> b"}])


def test_lite_prompts_carry_no_media_tokens(official_tiny):
    processor = _processor(official_tiny / "pixelreferlite-tiny")
    image = (np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8)
    plain = processor.encode(Media(frames=[image]), [_region(56, 84)], [{"role": "user", "content": "What is <region>?"}])
    tagged = processor.encode(Media(frames=[image]), [_region(56, 84)], [{"role": "user", "content": "<image>\nWhat is <region>?"}])
    assert processor.image_id not in plain.input_ids and tagged.input_ids == plain.input_ids
    assert plain.input_ids.count(processor.region_id) == 32


def test_generation_config_json_sets_the_generation_defaults(official_tiny, tmp_path):
    from pixelrefer import GenerationConfig, PixelRefer

    folder = _variant(official_tiny, tmp_path)
    gen_file = folder / "generation_config.json"
    gen_file.write_text(json.dumps({**json.loads(gen_file.read_text()), "repetition_penalty": 5.0}))
    penalised = PixelRefer.from_pretrained(folder, device="cpu", dtype="float32", segmenter=None)
    plain = PixelRefer.from_pretrained(official_tiny / "pixelrefer-tiny", device="cpu", dtype="float32", segmenter=None)
    assert penalised.model.generation_config.repetition_penalty == 5.0
    image = (np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8)
    ask = lambda pr, **kw: pr.ask(image, [], "Describe it.", GenerationConfig(max_new_tokens=8, min_new_tokens=8, **kw)).token_ids
    assert ask(penalised) == ask(plain, repetition_penalty=5.0)
    assert ask(penalised) != ask(plain)
    assert ask(penalised, repetition_penalty=1.0) == ask(plain)  # an explicit setting still wins


def test_lite_video_regions_keep_the_frames_they_were_given_on(official_tiny):
    from pixelrefer.inference.resolve import resolve_regions
    from pixelrefer.regions import Region

    processor = _processor(official_tiny / "pixelreferlite-tiny")
    frames = [(np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8)] * 3
    media = Media(frames=frames, timestamps=[0.0, 1.0, 2.0])
    mask = np.zeros((56, 84), bool)
    mask[10:40, 20:60] = True
    turn = [{"role": "user", "content": "What is <region>?"}]
    given = processor.encode(media, [Region.from_frames({0: mask, 2: mask})], turn)
    assert len(given.crops) == 2  # the official code reads exactly the annotated frames
    assert "[Time 0.0:<REGION>" in processor.tokenizer.decode(given.input_ids) and "Time 1.0:" not in processor.tokenizer.decode(given.input_ids)
    one = processor.encode(media, resolve_regions(media, [Region.from_frames({0: mask})], processor.config), turn)
    assert len(one.crops) == 3  # a region given on one frame is carried through the video (beside the processor)


def test_answers_stop_at_the_checkpoint_eos_ids(official_tiny, tmp_path):
    from pixelrefer import GenerationConfig, PixelRefer

    image = (np.random.default_rng(0).random((56, 84, 3)) * 255).astype(np.uint8)
    plain = PixelRefer.from_pretrained(official_tiny / "pixelrefer-tiny", device="cpu", dtype="float32", segmenter=None)
    ids = plain.ask(image, [], "Describe it.", GenerationConfig(max_new_tokens=8)).token_ids
    stop = next(t for i, t in enumerate(ids) if i > 0 and t not in ids[:i])
    folder = _variant(official_tiny, tmp_path)
    gen_file = folder / "generation_config.json"
    gen_file.write_text(json.dumps({**json.loads(gen_file.read_text()), "eos_token_id": [482, stop]}))
    listed = PixelRefer.from_pretrained(folder, device="cpu", dtype="float32", segmenter=None)
    assert set(listed.stop_ids) == {482, stop}
    assert listed.ask(image, [], "Describe it.", GenerationConfig(max_new_tokens=8)).token_ids == ids[: ids.index(stop)]


def test_torch_dtype_sets_the_compression_dtype(official_tiny, tmp_path):
    assert _config(official_tiny / "pixelrefer-tiny").compression_dtype == "float32"
    folder = _variant(official_tiny, tmp_path, config={"torch_dtype": "bfloat16"}, weights=False)
    assert _config(folder).compression_dtype == "bfloat16"
    folder = _variant(official_tiny, tmp_path / "f64", config={"torch_dtype": "float64"}, weights=False)
    with pytest.raises(CheckpointError, match="torch_dtype"):
        _config(folder)
