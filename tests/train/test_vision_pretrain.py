"""Vision pretraining: the region stream, the trained tensors, loading them, and the recipe's use of it."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pixelrefer.recipes.config import VisionPretrainSection, vision_optim
from pixelrefer.recipes.regions import FACTS, NO_PATTERN, SyntheticRegions, collate_regions, region_facts
from pixelrefer.recipes.vision import crop_spec, prepare_vision, pretrain_vision
from pixelrefer.synth import world
from pixelrefer.train.loop import METRICS_FILE
from pixelrefer.train.run import VISION_PREFIXES as PREFIXES
from pixelrefer.train.run import VISION_WEIGHTS_FILE as WEIGHTS_FILE
from pixelrefer.train.run import build_model, load_tokenizer, load_vision_weights

SHORT = VisionPretrainSection(steps=4, batch_size=6, optim=replace(vision_optim(), warmup_steps=1), workers=0,
                              val_regions=6, eval_every=2, log_every=1, image_size=112)


@pytest.fixture
def tiny_model(tiny_config):
    cfg = tiny_config()
    return build_model(cfg, load_tokenizer(cfg))


def _stream(model, seed: int = 0, stream: int = 0) -> SyntheticRegions:
    return SyntheticRegions(crop_spec(model), world.category_labels(), seed, stream, 112, 12)


def test_region_stream_is_seeded_and_labelled(tiny_model):
    first = list(itertools.islice(iter(_stream(tiny_model)), 12))
    again = list(itertools.islice(iter(_stream(tiny_model)), 12))
    other = list(itertools.islice(iter(_stream(tiny_model, stream=1)), 12))
    assert [lab for _, lab, _, _ in first] == [lab for _, lab, _, _ in again]
    assert all(np.array_equal(a.patches, b.patches) for (a, *_), (b, *_) in zip(first, again))
    assert not all(np.array_equal(a.patches, b.patches) for (a, *_), (b, *_) in zip(first, other))
    labels = world.category_labels()
    assert all(0 <= lab < len(labels) for _, lab, _, _ in first)
    for crop, *_ in first:  # every crop keeps some of its object on the token grid, inside the crop budget
        assert crop.mask_grid.sum() >= 1
        assert crop.patches.shape[0] <= tiny_model.config.max_crop_patches
    visual, target, sizes, facts = collate_regions(first[:5])
    assert visual.num_regions == 5 and target.tolist() == [lab for _, lab, _, _ in first[:5]]
    assert set(sizes) <= set(world.SIZES)
    assert facts.shape == (5, len(FACTS) + 1) and bool(((facts[:, :-1] >= 0) & (facts[:, :-1] <= 1)).all())


def test_held_out_stream_keeps_only_held_out_objects(tiny_model):
    from pixelrefer.synth.scenes import render_scene

    stream = SyntheticRegions(crop_spec(tiny_model), world.category_labels(), 0, 2, 112, 12, palette=True,
                              held_out="require")
    for i in range(4):
        scene = render_scene(np.random.default_rng([0, 2, i]), (112, 112), held_out="require")
        held = [o for o in scene.objects if o.spec.held_out]
        names = [world.part_label(o.category, None) for o in held]
        got = [world.category_labels()[lab] for _, lab, _, _ in stream.regions(i)]
        assert [g for g in got if ":" not in g] == names


def test_pretraining_trains_only_the_vision_side_and_round_trips(tiny_model, tmp_path):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    pretrain_vision(tiny_model, SHORT, tmp_path / "vision", torch.device("cpu"), progress=False)
    after = tiny_model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(PREFIXES) for k in changed)
    assert any(k.startswith("object_tokenizer.pos_proj.") for k in changed)
    records = [json.loads(line) for line in (tmp_path / "vision" / METRICS_FILE).read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert set(r["per_size"]) == {"val", "heldout"} and r["heldout_accuracy"] == r["per_size"]["heldout"]["all"]
        assert set(r["per_size"]["val"]) - {"all"} <= set(world.SIZES)
    assert all(np.isfinite(r["loss"]) for r in records if r["type"] == "train")

    fresh = type(tiny_model)(tiny_model.config)
    load_vision_weights(fresh, tmp_path / "vision")
    for k, v in fresh.state_dict().items():
        if k.startswith(PREFIXES):
            assert torch.equal(v, after[k]), k


def test_loading_into_a_different_model_is_an_error(tiny_model, tmp_path, tiny_config):
    pretrain_vision(tiny_model, SHORT, tmp_path / "vision", torch.device("cpu"), progress=False)
    cfg = tiny_config("model.preset=nano-arch")
    other = build_model(cfg, load_tokenizer(cfg))
    with pytest.raises(ValueError, match="does not fit the model: missing"):
        load_vision_weights(other, tmp_path / "vision")


def test_recipe_pretrains_once_then_reuses(tiny_config, tmp_path):
    folder = tmp_path / "shared-vision"
    overrides = [f"model.vision_init={folder}", "vision_pretrain.steps=2", "vision_pretrain.batch_size=4",
                 "vision_pretrain.workers=0", "vision_pretrain.val_regions=4", "vision_pretrain.image_size=112"]
    cfg = tiny_config(*overrides)
    prepare_vision(cfg)
    model = build_model(cfg, load_tokenizer(cfg))
    assert (folder / WEIGHTS_FILE).is_file()
    stamp = (folder / WEIGHTS_FILE).stat().st_mtime_ns
    prepare_vision(cfg)
    again = build_model(cfg, load_tokenizer(cfg))  # the folder exists: loaded, not retrained
    assert (folder / WEIGHTS_FILE).stat().st_mtime_ns == stamp
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    missing = tiny_config(f"model.vision_init={tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="vision_pretrain is not set"):
        prepare_vision(missing)


def test_position_gain_does_not_change_the_pretrained_tower(tiny_config, tmp_path):
    overrides = ["vision_pretrain.steps=2", "vision_pretrain.batch_size=4", "vision_pretrain.workers=0",
                 "vision_pretrain.val_regions=4", "vision_pretrain.image_size=112"]
    plain = tiny_config(*overrides, f"model.vision_init={tmp_path / 'plain'}")
    loud = tiny_config(*overrides, f"model.vision_init={tmp_path / 'loud'}", "model.position_gain=30")
    prepare_vision(plain)
    prepare_vision(loud)
    a, b = load_file(tmp_path / "plain" / WEIGHTS_FILE), load_file(tmp_path / "loud" / WEIGHTS_FILE)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    gained = build_model(loud, load_tokenizer(loud)).object_tokenizer.pos_proj.weight
    assert torch.allclose(gained, 30 * a["object_tokenizer.pos_proj.weight"])  # the LLM stage's model has the gain


def test_both_variants_pretrain_the_same_tower(tiny_config):
    full_cfg, lite_cfg = tiny_config(), tiny_config("model.preset=tiny-lite")
    full = build_model(full_cfg, load_tokenizer(full_cfg))
    lite = build_model(lite_cfg, load_tokenizer(lite_cfg))
    assert lite.config.downscale_threshold_patches != full.config.downscale_threshold_patches
    assert crop_spec(lite) == crop_spec(full)


def test_folder_lock_makes_runs_take_turns(tmp_path):
    import threading
    import time

    from pixelrefer.recipes.vision import folder_lock

    events: list[str] = []

    def second() -> None:
        with folder_lock(tmp_path / "shared"):
            events.append("second in")

    with folder_lock(tmp_path / "shared"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        events.append("first out")
    thread.join(timeout=10)
    assert events == ["first out", "second in"]


def test_cell_loss_adds_a_label_loss_on_every_cell_inside_the_mask(tiny_model):
    from pixelrefer.recipes.vision import RegionClassifier, RegionLabelObjective

    torch.manual_seed(0)
    classifier = RegionClassifier(tiny_model, len(world.category_labels()))
    batch = collate_regions(list(itertools.islice(iter(_stream(tiny_model)), 5)))
    visual, target, _, _ = batch
    cpu = torch.device("cpu")
    plain, n = RegionLabelObjective(1e-3, 0.0, {}).loss(classifier, batch, cpu)
    assert n == 5 and torch.allclose(plain, torch.nn.functional.cross_entropy(classifier(visual), target))
    dense, _ = RegionLabelObjective(1e-3, 0.0, {}, cell_loss=0.5).loss(classifier, batch, cpu)
    tokens = classifier.region_tokens(visual)
    cells = torch.cat([torch.full((len(t),), int(y)) for t, y in zip(tokens, target)])
    by_hand = plain + 0.5 * torch.nn.functional.cross_entropy(classifier.head(torch.cat(tokens)), cells)
    assert sum(len(t) for t in tokens) > 5 and torch.allclose(dense, by_hand)
    with pytest.raises(Exception, match="cell_loss"):
        VisionPretrainSection(cell_loss=-1.0)


def test_region_facts_are_measured_on_the_pixels():
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[2:6, 4:12] = (255, 0, 51)
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:6, 4:12] = True
    facts = region_facts(image, mask, (4, 2, 12, 6), NO_PATTERN)
    np.testing.assert_allclose(facts, [1.0, 0.0, 0.2, 0.2, 0.2, 0.6, 0.6, NO_PATTERN], atol=1e-6)


def test_fact_loss_is_the_mean_of_the_binned_fact_and_pattern_losses(tiny_model):
    from pixelrefer.recipes.vision import FACT_BINS, RegionClassifier, RegionLabelObjective, fact_loss

    torch.manual_seed(0)
    classifier = RegionClassifier(tiny_model, len(world.category_labels()), facts=True)
    batch = collate_regions(list(itertools.islice(iter(_stream(tiny_model)), 6)))
    visual, target, _, facts = batch
    assert (facts[:, -1] == NO_PATTERN).any() and (facts[:, -1] != NO_PATTERN).any()  # parts and objects
    pooled = classifier.pooled(visual)
    logits = classifier.facts(pooled)
    k = len(FACTS) * FACT_BINS
    bins = torch.clamp((facts[:, :len(FACTS)] * FACT_BINS).long(), max=FACT_BINS - 1)
    whole = facts[:, -1] != NO_PATTERN
    by_hand = (torch.nn.functional.cross_entropy(logits[:, :k].reshape(-1, FACT_BINS), bins.reshape(-1))
               + torch.nn.functional.cross_entropy(logits[whole, k:], facts[whole, -1].long())) / 2
    assert torch.allclose(fact_loss(classifier, pooled, facts), by_hand)
    cpu = torch.device("cpu")
    total, _ = RegionLabelObjective(1e-3, 0.0, {}, fact_loss=0.5).loss(classifier, batch, cpu)
    label = torch.nn.functional.cross_entropy(classifier.head(pooled), target)
    assert torch.allclose(total, label + 0.5 * by_hand)
    with pytest.raises(Exception, match="fact_loss"):
        VisionPretrainSection(fact_loss=-1.0)


def test_pretraining_with_facts_reports_them_and_keeps_their_head(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from pixelrefer.train.run import HEAD_FILE

    pretrain_vision(tiny_model, replace(SHORT, fact_loss=1.0), tmp_path / "vision", torch.device("cpu"),
                    progress=False)
    records = [json.loads(line) for line in (tmp_path / "vision" / METRICS_FILE).read_text().splitlines()]
    last = [r for r in records if r["type"] == "eval"][-1]
    val = last["per_size"]["val"]
    assert {f"fact:{name}" for name in FACTS} | {"fact:pattern"} <= set(val)
    names = [f"fact:{name}" for name in FACTS] + ["fact:pattern"]
    assert last["val_fact_accuracy"] == pytest.approx(sum(val[n] for n in names) / len(names))
    head = load_file(tmp_path / "vision" / HEAD_FILE)
    assert {"weight", "bias", "facts.weight", "facts.bias"} == set(head)


def test_projector_init_starts_the_object_projector_as_the_fact_head(tiny_config, tmp_path):
    from pixelrefer.errors import ConfigError
    from pixelrefer.train.run import HEAD_FILE

    overrides = ["vision_pretrain.steps=2", "vision_pretrain.batch_size=4", "vision_pretrain.workers=0",
                 "vision_pretrain.val_regions=4", "vision_pretrain.image_size=112", "vision_pretrain.fact_loss=1",
                 f"model.vision_init={tmp_path / 'tower'}"]
    plain_cfg = tiny_config(*overrides)
    facts_cfg = tiny_config(*overrides, "model.projector_init=facts")
    prepare_vision(facts_cfg)  # the pretraining itself runs without the option
    plain = build_model(plain_cfg, load_tokenizer(plain_cfg)).object_tokenizer.mlp[0]
    first = build_model(facts_cfg, load_tokenizer(facts_cfg)).object_tokenizer.mlp[0]
    head = load_file(tmp_path / "tower" / HEAD_FILE)["facts.weight"]
    n = len(head)
    cosine = torch.nn.functional.cosine_similarity(first.weight[:n], head, dim=1)
    assert torch.allclose(cosine, torch.ones(n), atol=1e-5)  # the fact head's directions ...
    norms = first.weight[:n].norm(dim=1)
    assert torch.allclose(norms, plain.weight.norm(dim=1).mean().expand(n), rtol=1e-5)  # ... at the random rows' scale
    assert torch.equal(first.weight[n:], plain.weight[n:]) and torch.equal(first.bias[n:], plain.bias[n:])
    assert not torch.equal(first.weight[:n], plain.weight[:n])
    with pytest.raises(ConfigError, match="projector_init"):
        tiny_config("model.projector_init=facts")  # no vision_init folder to read the head from
    with pytest.raises(ConfigError, match="projector_init must be one of"):
        tiny_config(*overrides, "model.projector_init=labels")
    no_facts = tiny_config(*overrides[:-2], f"model.vision_init={tmp_path / 'labels-only'}", "model.projector_init=facts")
    prepare_vision(no_facts)
    with pytest.raises(FileNotFoundError, match="holds no fact head"):
        build_model(no_facts, load_tokenizer(no_facts))
