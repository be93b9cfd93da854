"""The scene and video generators: determinism, exact masks, held-out rule, motion facts."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrefer.synth import scenes, world
from pixelrefer.synth.scenes import object_rgb, render_scene
from pixelrefer.synth.videos import DIRECTIONS, render_video


def _centre(box: tuple[int, int, int, int]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def test_same_seed_same_scene_and_different_seed_different_scene() -> None:
    a = render_scene(np.random.default_rng(7))
    b = render_scene(np.random.default_rng(7))
    c = render_scene(np.random.default_rng(8))
    assert np.array_equal(a.image, b.image)
    assert [o.facts() for o in a.objects] == [o.facts() for o in b.objects]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.objects, b.objects))
    assert not np.array_equal(a.image, c.image)


def test_scene_masks_are_exact_disjoint_and_match_boxes() -> None:
    for seed in range(6):
        scene = render_scene(np.random.default_rng(seed), size=(160, 192))
        assert scene.image.shape == (160, 192, 3) and scene.image.dtype == np.uint8
        assert 3 <= len(scene.objects) <= 6
        union = np.zeros((160, 192), dtype=int)
        for obj in scene.objects:
            assert obj.mask.dtype == bool and obj.mask.any()
            union += obj.mask
            ys, xs = np.nonzero(obj.mask)
            assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            if obj.pattern == "solid" and obj.category in world.SHAPES:
                expected = np.rint(object_rgb(obj.spec, obj.colour)).astype(np.uint8)
                assert (scene.image[obj.mask] == expected).all(), "a solid object's pixels are its colour"
            if obj.parts:
                parts = np.zeros_like(obj.mask)
                for part in obj.parts:
                    assert not (parts & part.mask).any(), "parts are disjoint"
                    parts |= part.mask
                assert np.array_equal(parts, obj.mask), "the parts tile the object"
        assert union.max() <= 1, "visible masks never overlap"


def test_held_out_combos_are_excluded_or_required() -> None:
    assert len(world.HELD_OUT) == len(world.CATEGORIES)
    assert {c for c, _ in world.HELD_OUT} == set(world.CATEGORIES)
    for seed in range(25):
        scene = render_scene(np.random.default_rng(seed), held_out="exclude")
        assert not any(world.is_held_out(o.category, o.colour) for o in scene.objects)
    required = [render_scene(np.random.default_rng(s), held_out="require") for s in range(10)]
    assert sum(any(o.spec.held_out for o in s.objects) for s in required) >= 9
    with pytest.raises(ValueError):
        render_scene(np.random.default_rng(0), held_out="sometimes")


def test_off_palette_scenes_never_show_a_named_colour() -> None:
    palette = np.array(list(world.COLOURS.values()), dtype=np.float32)
    same_layout = 0
    for seed in range(12):
        named = render_scene(np.random.default_rng(seed))
        free = render_scene(np.random.default_rng(seed), palette=False)
        same_layout += [o.box for o in named.objects] == [o.box for o in free.objects]
        for obj in free.objects:
            own = obj.mask.copy()
            for part in obj.parts:  # fixed-colour parts (wheels, poles, ...) keep their colours
                if not any(p.name == part.name and p.coloured for p in world.COMPOSITES[obj.category]):
                    own &= ~part.mask
            colours = np.unique(free.image[own].astype(np.float32), axis=0)
            distance = np.linalg.norm(colours[:, None] - palette[None], axis=2).min()
            assert distance >= scenes.OFF_PALETTE_DISTANCE - 1, (seed, obj.category, distance)
    assert same_layout == 12, "the colours are drawn after the layout: same objects, same places"


def test_video_is_deterministic_and_motion_facts_match_masks() -> None:
    checked = 0
    for seed in range(8):
        video = render_video(np.random.default_rng(seed))
        again = render_video(np.random.default_rng(seed))
        assert all(np.array_equal(a, b) for a, b in zip(video.frames, again.frames))
        assert 4 <= len(video.frames) <= 8 and len(video.timestamps) == len(video.frames)
        for track in video.tracks:
            present = [t for t, m in enumerate(track.masks) if m is not None and m.any()]
            assert present == track.present, "a track has a non-empty mask exactly where it is present"
            if track.motion == "static":
                continue
            first, last = track.present[0], track.present[-1]
            step = _centre(track.box(last)) - _centre(track.box(first))
            axis = np.array(DIRECTIONS[track.motion])
            if track.masks[first].sum() == track.masks[last].sum():  # unoccluded at both ends
                assert float(step @ axis) > 0 and abs(float(step @ axis[::-1])) <= 1
                checked += 1
    assert checked > 0


def test_colour_change_is_visible_in_pixels() -> None:
    found = 0
    for seed in range(40):
        video = render_video(np.random.default_rng(seed))
        for track in video.tracks:
            change = track.colour_change
            if change is None or track.spec.pattern != "solid" or track.category not in world.SHAPES:
                continue
            before, after, at = change
            t0, t1 = at - 1, at
            if track.masks[t0] is None or track.masks[t1] is None:
                continue
            expected0 = np.rint(object_rgb(track.spec, before)).astype(np.uint8)
            expected1 = np.rint(object_rgb(track.spec, after)).astype(np.uint8)
            assert (video.frames[t0][track.masks[t0]] == expected0).all()
            assert (video.frames[t1][track.masks[t1]] == expected1).all()
            found += 1
    assert found > 0


def test_video_converts_to_the_media_container() -> None:
    video = render_video(np.random.default_rng(3), fps=2.0)
    media = video.media()
    assert media.is_video and media.num_frames == len(video.frames) and media.timestamps == video.timestamps
    assert media.frame_indices == list(range(len(video.frames))) and media.fps == 2.0
    assert media.size == (video.height, video.width)
