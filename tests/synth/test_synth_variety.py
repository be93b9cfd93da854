"""The world's variety options (:class:`pixelrefer.synth.config.Variety`): off by default (the plain world, draw
for draw), each one changes the pixels but never the ground truth's masks, and bad values are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pixelrefer.errors import ConfigError
from pixelrefer.synth.config import SynthConfig, Variety
from pixelrefer.synth.scenes import jpeg_round_trip, natural_background, render_scene

SIZE = (96, 96)


def _scene(variety: Variety | None = None, seed: int = 3):
    kwargs = {} if variety is None else {"variety": variety}
    return render_scene(np.random.default_rng(seed), SIZE, **kwargs)


def test_default_variety_is_the_plain_world() -> None:
    assert SynthConfig().variety == Variety()
    plain, explicit = _scene(), _scene(Variety())
    assert np.array_equal(plain.image, explicit.image)
    assert [o.facts() for o in plain.objects] == [o.facts() for o in explicit.objects]


@pytest.mark.parametrize("option", [{"background": "natural"}, {"shading": 0.5}, {"noise": 8.0},
                                    {"jpeg_quality": (20, 40)}, {"clutter": (3, 3)}])
def test_each_option_changes_pixels_not_masks(option: dict) -> None:
    plain, varied = _scene(), _scene(Variety(**option))
    assert not np.array_equal(plain.image, varied.image)
    for a, b in zip(plain.objects, varied.objects, strict=True):
        assert a.facts() == b.facts() and np.array_equal(a.mask, b.mask)


def test_aspect_range_stretches_objects() -> None:
    scenes = [render_scene(np.random.default_rng(s), SIZE, variety=Variety(aspect=(2.5, 3.0))) for s in range(4)]
    assert all(2.5 <= o.spec.aspect <= 3.0 for sc in scenes for o in sc.objects)


def test_natural_background_and_jpeg() -> None:
    bg = natural_background(np.random.default_rng(0), SIZE)
    assert bg.shape == (*SIZE, 3) and bg.dtype == np.float32 and bg.std() > 5
    image = _scene().image
    out = jpeg_round_trip(image, 20)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)


@pytest.mark.parametrize("bad", [{"background": "photo"}, {"shading": 1.5}, {"noise": -1.0},
                                 {"jpeg_quality": (2, 50)}, {"jpeg_quality": (80, 40)}, {"aspect": (2.0, 1.0)},
                                 {"clutter": (5, 2)}])
def test_bad_variety_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match="variety"):
        Variety(**bad)


def test_config_records_variety() -> None:
    cfg = SynthConfig(variety=Variety(noise=4.0))
    assert dataclasses.asdict(cfg)["variety"]["noise"] == 4.0


def test_a_recipe_turns_variety_on_by_override() -> None:
    from pixelrefer.recipes.config import load_recipe_config

    cfg = load_recipe_config("nano", ["data.synth.variety.background=natural", "data.synth.variety.jpeg_quality=[30,90]"])
    assert cfg.data.synth.variety == Variety(background="natural", jpeg_quality=(30, 90))
    assert load_recipe_config("nano").data.synth.variety == Variety()


def test_build_renders_scenes_with_the_configs_variety(tmp_path) -> None:
    from PIL import Image

    from pixelrefer.synth.build import build_dataset

    common = dict(n_train=2, n_val=0, n_test=0, n_heldout=0, video_fraction=0.0, image_size=48, progress=False)
    plain = build_dataset(tmp_path / "plain", **common)
    varied = build_dataset(tmp_path / "varied", variety=Variety(noise=10.0), **common)
    assert varied["arguments"]["variety"]["noise"] == 10.0 and plain["arguments"]["variety"] == dataclasses.asdict(Variety())
    a = np.asarray(Image.open(tmp_path / "plain" / "images" / "train" / "000000.png"))
    b = np.asarray(Image.open(tmp_path / "varied" / "images" / "train" / "000000.png"))
    assert a.shape == b.shape and not np.array_equal(a, b)
