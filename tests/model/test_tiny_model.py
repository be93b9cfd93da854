import numpy as np
import pytest
import torch

from pixelrefer import AskRequest, GenerationConfig, PixelRefer, PixelReferConfig, Region
from pixelrefer.model.fusion import PlaceholderMismatchError
from pixelrefer.model.kmeans import kmeans_compress
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.model.tokenizer import byte_level_tokenizer
from pixelrefer.presets import RANDOM_PRESETS, preset_config
from pixelrefer.processing.prompts import PromptError
from pixelrefer.regions import RegionError

G = GenerationConfig(max_new_tokens=5)


@pytest.mark.parametrize("name", sorted(RANDOM_PRESETS))
def test_every_preset_instantiates(name):
    config = preset_config(name, byte_level_tokenizer())
    with torch.device("meta"):
        model = PixelReferForConditionalGeneration(config)
    n = sum(p.numel() for p in model.parameters())
    assert (model.oci is not None) == ("lite" in name)  # tiny-lite, lite-2b, nano-lite-arch, ...
    assert (model.projector is None) == ("lite" in name)
    if name == "2b":
        assert 1.9e9 < n < 2.3e9, n  # 412M vision + 1.54B LLM (tied) + projector + tokenizer MLP


def test_forward_loss_and_generate(tiny, scene):
    img, m1, _m2 = scene
    p = tiny.processor
    sample = p.encode(img, [m1], [{"role": "user", "content": "What is <region>?"}, {"role": "assistant", "content": "a red box"}],
                      add_generation_prompt=False, with_labels=True)
    batch = p.collate([sample], padding_side="right")
    out = tiny.model(**batch.as_kwargs())
    assert out.loss is not None and torch.isfinite(out.loss)
    supervised = (batch.labels != -100).sum().item()
    assert supervised == len(p._tokenize("a red box<|im_end|>"))
    out.loss.backward()
    assert tiny.model.object_tokenizer.pos_proj.weight.grad is not None
    tiny.model.zero_grad(set_to_none=True)
    ans = tiny.ask(img, [Region.from_mask(m1)], "What is <region>?", G)
    assert 1 <= len(ans.token_ids) <= 5


def test_save_load_identical_logits(tiny, scene, tmp_path):
    img, m1, _ = scene
    batch = tiny.processor(img, [m1], "What is <region>?")
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    again = PixelRefer.from_pretrained(tmp_path, device="cpu", dtype="float32", segmenter=None)
    with torch.no_grad():
        a = tiny.model(**batch.as_kwargs()).logits
        b = again.model(**batch.as_kwargs()).logits
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_batch_of_two_equals_each_alone(tiny, scene):
    img, m1, m2 = scene
    p = tiny.processor
    s1 = p.encode(img, [m1], [{"role": "user", "content": "What is <region>?"}])
    s2 = p.encode(img[:98, :126].copy(), [m2[:98, :126].copy()], [{"role": "user", "content": "Describe <region> in a few words please."}])
    both = p.collate([s1, s2], padding_side="left")
    with torch.no_grad():
        lb = tiny.model(**both.as_kwargs()).logits
        for i, s in enumerate((s1, s2)):
            alone = p.collate([s])
            la = tiny.model(**alone.as_kwargs()).logits[0]
            torch.testing.assert_close(lb[i, -la.shape[0]:], la, atol=2e-5, rtol=1e-4)


def test_batched_requests_match_single_requests(tiny, scene):
    img, m1, m2 = scene
    singles = [tiny.ask(img, [m], "What is <region>?", G).token_ids for m in (m1, m2)]
    batched = [a.token_ids for a in tiny.ask_batch([AskRequest(img, [m1], "What is <region>?"), AskRequest(img, [m2], "What is <region>?")], G)]
    assert batched == singles


def test_shared_prefix_describe_each_matches_independent(tiny, scene):
    img, m1, m2 = scene
    q = "Please describe <region> briefly."
    independent = [tiny.ask(img, [m], q, G).token_ids for m in (m1, m2, m1)]
    shared = [a.token_ids for a in tiny.describe_each(img, [m1, m2, m1], question=q, generation=G)]
    assert shared == independent


def test_chat_follow_up_reuses_cache_and_matches_full_recompute(tiny, scene):
    from pixelrefer.processing.processor import collate_visual

    img, m1, m2 = scene
    p = tiny.processor
    session = tiny.chat(img, [m1])
    session.ask("What is <region>?", generation=G)
    history = list(session.ids)
    second = session.ask("Compare it with <region>.", regions=[m2], generation=G)
    # recompute the second turn without any cache, from the exact same token ids
    turn1 = p.encode(img, [m1], [{"role": "user", "content": "What is <region>?"}])
    turn2 = p.encode(img, [m2], [{"role": "user", "content": "Compare it with <region>."}], include_media=False)
    ids = torch.tensor([history + turn2.input_ids])
    with torch.no_grad():
        out = tiny.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), visual=collate_visual([turn1, turn2]),
                                  max_new_tokens=5, do_sample=False, eos_token_id=tiny.eos_id, pad_token_id=p.pad_id)
    recomputed = out[0, ids.shape[1]:].tolist()
    if tiny.eos_id in recomputed:
        recomputed = recomputed[: recomputed.index(tiny.eos_id)]
    assert history[: len(turn1.input_ids)] == turn1.input_ids
    assert second.token_ids == recomputed


def test_region_count_mismatch_raises(tiny, scene):
    img, m1, m2 = scene
    with pytest.raises(PromptError, match="placeholder"):
        tiny.ask(img, [m1, m2], "What is <region>?", G)
    with pytest.raises(ValueError, match="placeholder"):
        tiny.ask(img, [m1], "Compare <region> and <region>.", G)


def test_fusion_mismatch_raises(tiny, scene):
    img, m1, _ = scene
    batch = tiny.processor(img, [m1], "What is <region>?")
    ids = batch.input_ids.clone()
    ids[0, -3] = tiny.model.config.region_token_id
    with pytest.raises(PlaceholderMismatchError, match="region placeholder"):
        tiny.model(input_ids=ids, attention_mask=batch.attention_mask, visual=batch.visual)


def test_bad_regions_and_arguments(tiny, scene):
    img, m1, _ = scene
    with pytest.raises(RegionError, match="empty"):
        tiny.ask(img, [np.zeros_like(m1)], "What is <region>?", G)
    with pytest.raises(RegionError, match="does not match"):
        tiny.ask(img, [m1[:50]], "What is <region>?", G)
    with pytest.raises(RegionError, match="frame"):
        tiny.ask(img, [Region.from_frames({3: m1})], "What is <region>?", G)
    with pytest.raises(ValueError, match="variant"):
        PixelReferConfig(variant="medium")
    with pytest.raises(ValueError, match="dtype"):
        PixelRefer.from_pretrained("tiny", dtype="float13", segmenter=None)
    with pytest.raises(ValueError, match="device"):
        PixelRefer.from_pretrained("tiny", device="tpu9", segmenter=None)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)


def test_corrupted_and_truncated_checkpoints(tiny, tmp_path):
    from pixelrefer.model.convert import CheckpointError

    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        PixelRefer.from_pretrained(tmp_path, device="cpu", dtype="float32", segmenter=None)
    with pytest.raises(CheckpointError):
        PixelRefer.from_pretrained(tmp_path / "missing", device="cpu", segmenter=None)


def test_kmeans_deterministic_and_batch_independent():
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(80, 16, generator=gen), torch.randn(50, 16, generator=gen)
    alone = kmeans_compress([a], 8, 5)[0]
    again = kmeans_compress([a], 8, 5)[0]
    with_other = kmeans_compress([b, a], 8, 5)[1]
    torch.testing.assert_close(alone, again, atol=0, rtol=0)
    torch.testing.assert_close(alone, with_other, atol=1e-6, rtol=1e-6)
    assert alone.shape == (8, 16)
    small = torch.randn(5, 16)
    assert kmeans_compress([small], 8, 5)[0] is small


def test_kmeans_official_generator_reproduces_recorded_permutation(official_tiny):
    exp = np.load(official_tiny / "expected/pixelreferlite_image.npz")
    gen = torch.Generator().manual_seed(1234)
    for key in ("kmeans0_randperm", "kmeans1_randperm"):
        assert torch.randperm(len(exp[key]), generator=gen).tolist() == exp[key].tolist()


def test_kmeans_matches_reference_loop():
    """The batched k-means equals a plain per-region loop of the official algorithm."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(70, 8, generator=gen)
    k, perm = 6, torch.randperm(70, generator=torch.Generator().manual_seed(0))
    c = x[perm[:k]].clone()
    for _ in range(5):
        assign = torch.cdist(x, c).argmin(1)
        new = torch.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)])
        if torch.allclose(c, new, rtol=1e-5, atol=1e-6):
            break
        c = new
    ours = kmeans_compress([x], k, 5, seed=0)[0]
    torch.testing.assert_close(ours, c, atol=1e-5, rtol=1e-5)


def test_transformers_native_from_pretrained_round_trip(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    again, info = PixelReferForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state = tiny.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
    if again.config.tie_word_embeddings:
        assert again.lm_head.weight.data_ptr() == again.language_model.embed_tokens.weight.data_ptr()


def test_sampling_is_seeded(tiny, scene):
    img, m1, _ = scene
    g = GenerationConfig(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    a = tiny.ask(img, [m1], "What is <region>?", g).token_ids
    assert a == tiny.ask(img, [m1], "What is <region>?", g).token_ids
    others = {tuple(tiny.ask(img, [m1], "What is <region>?", GenerationConfig(max_new_tokens=8, do_sample=True,
                                                                                 temperature=1.5, seed=s)).token_ids)
              for s in (4, 5, 6)}
    assert len(others | {tuple(a)}) > 1


def test_mask_pooling_baseline_runs_through_the_model(tiny, scene):
    import copy

    from pixelrefer.processing.processor import PixelReferProcessor

    img, m1, _ = scene
    config = copy.deepcopy(tiny.model.config)
    config.region_encoder = "mask_pooling"
    pooled = PixelReferProcessor(tiny.processor.tokenizer, config)
    messages = [{"role": "user", "content": "What is <region>?"}]
    a = tiny.processor.encode(img, [m1], messages, add_generation_prompt=True, with_labels=False)
    b = pooled.encode(img, [m1], messages, add_generation_prompt=True, with_labels=False)
    assert b.crops[0].box == (0, 0, 111, 139) and b.crops[0].scale == 1.0 and a.crops[0].box != b.crops[0].box
    with torch.no_grad():
        la = tiny.model(**tiny.processor.collate([a]).as_kwargs()).logits[0, -1]
        lb = tiny.model(**pooled.collate([b]).as_kwargs()).logits[0, -1]
    assert torch.isfinite(lb).all() and not torch.allclose(la, lb)
