"""The media module's API: EXIF-upright loading everywhere, one image-vs-video rule, one container, one sampling."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixelrefer.media import (
    DEFAULT_SAMPLING,
    OFFICIAL_EVAL_SAMPLING,
    Media,
    MediaError,
    VideoSampling,
    load_image,
    load_media,
    map_frames,
    media_kind,
    read_video,
    sniff,
    write_video,
)
from pixelrefer.media.image import shown_size

ORIENTATION = 0x0112


def _pattern(h: int = 12, w: int = 20) -> np.ndarray:
    """An asymmetric image: every transpose of it differs from it and from each other."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 10
    rgb[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 15
    rgb[:3, :4, 2] = 255
    return rgb


def _tagged_png(orientation: int, rgb: np.ndarray | None = None, mode: str = "RGB") -> bytes:
    image = Image.fromarray(_pattern() if rgb is None else rgb).convert(mode)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


def _expected(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pil_exif_transpose(orientation: int, tmp_path: Path) -> None:
    data = _tagged_png(orientation)
    expected = _expected(data)
    if orientation > 1:
        assert not np.array_equal(expected, _pattern())  # the tag really changes the picture
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    user_image = Image.open(io.BytesIO(data))
    for loaded in (load_image(data), load_image(path), load_image(user_image), load_media(path).frames[0],
                   load_media(data).frames[0], load_media(Image.open(io.BytesIO(data))).frames[0]):
        np.testing.assert_array_equal(loaded, expected)
    assert user_image.getexif().get(ORIENTATION) == orientation  # the caller's image is not modified
    with Image.open(path) as header_only:
        assert shown_size(header_only) == expected.shape[:2]  # what data validation checks masks against


def test_shown_size_of_a_png_reads_no_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data validation reads every image's size: a PNG's pixels must not be decoded for it (PIL's getexif does)."""
    from PIL import PngImagePlugin

    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    Image.fromarray(_pattern()).save(plain)
    tagged.write_bytes(_tagged_png(6))

    def refuse(self: Image.Image) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", refuse)
    for path, expected in ((plain, _pattern().shape[:2]), (tagged, _pattern().shape[1::-1])):
        with Image.open(path) as header_only:
            assert shown_size(header_only) == expected


def test_rotated_photo_loads_upright_with_its_shown_size(tmp_path: Path) -> None:
    data = _tagged_png(6)  # "rotate 90 CW to show": stored 12 x 20 (h x w), shown 20 x 12
    assert load_image(data).shape == (20, 12, 3)
    media = load_media(data)
    assert media.size == (20, 12) and not media.is_video


def test_jpeg_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(np.kron(_pattern(), np.ones((4, 4, 1), np.uint8)))
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    assert load_image(buffer.getvalue()).shape == (80, 48, 3)
    np.testing.assert_array_equal(load_image(buffer.getvalue()), _expected(buffer.getvalue()))


def test_frames_of_a_folder_are_upright(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:03d}.png").write_bytes(_tagged_png(3, _pattern() + i))
    clip = load_media(folder)
    assert clip.is_video and clip.num_frames == 3
    for i, frame in enumerate(clip.frames):
        np.testing.assert_array_equal(frame, _expected(_tagged_png(3, _pattern() + i)))
    listed = load_media([folder / f"{i:03d}.png" for i in range(3)])
    np.testing.assert_array_equal(listed.frames[2], clip.frames[2])


def test_server_upload_decoding_is_upright() -> None:
    from pixelrefer.server.media_io import decode_media
    from pixelrefer.server.settings import ServerSettings

    rgba = np.dstack([_pattern(), np.where(np.arange(20)[None, :] < 10, 255, 0).repeat(12, 0).astype(np.uint8)])
    data = _tagged_png(6, rgba, mode="RGBA")
    decoded = decode_media(data, ServerSettings())
    np.testing.assert_array_equal(decoded.frames[0], _expected(data))
    expected_alpha = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).getchannel("A")) > 0
    assert decoded.alpha is not None and decoded.alpha.shape == (20, 12)
    np.testing.assert_array_equal(decoded.alpha, expected_alpha)


def test_media_kind_is_one_rule(tmp_path: Path) -> None:
    png = _tagged_png(1)
    still_gif, moving_gif = tmp_path / "still.gif", tmp_path / "moving.gif"
    Image.fromarray(_pattern()).save(still_gif)
    write_video([_pattern(), _pattern() + 50], moving_gif, fps=2)
    mp4 = write_video([_pattern()] * 2, tmp_path / "v.mp4", fps=2)
    assert media_kind(png) == "image" and media_kind(tmp_path / "x.jpg") == "image"
    assert media_kind(Image.new("RGB", (4, 4))) == "image" and media_kind(np.zeros((4, 4, 3))) == "image"
    assert media_kind(mp4) == "video" and media_kind(mp4.read_bytes()) == "video" and media_kind(tmp_path) == "video"
    assert media_kind(np.zeros((2, 4, 4, 3))) == "video" and media_kind([png, png]) == "video"
    assert media_kind(still_gif) == "image" and media_kind(still_gif.read_bytes()) == "image"
    assert media_kind(moving_gif) == "video" and media_kind(moving_gif.read_bytes()) == "video"
    assert sniff(moving_gif.read_bytes()) == ("video", "gif") and sniff(b"not media") is None
    assert load_media(moving_gif.read_bytes()).num_frames == 2 and not load_media(still_gif).is_video


def test_container_maps_sampled_and_source_frames(tmp_path: Path) -> None:
    frames = [np.full((8, 8, 3), 6 * i, np.uint8) for i in range(40)]
    path = write_video(frames, tmp_path / "long.mp4", fps=10)
    clip = load_media(path)
    assert clip.is_video and clip.num_frames == DEFAULT_SAMPLING.max_frames and clip.source_num_frames == 40
    assert clip.frame_indices[0] == 0 and clip.frame_indices[-1] == 39
    for i, source in enumerate(clip.frame_indices):
        assert clip.source_index(i) == source and clip.sampled_index(source) == i
    assert clip.sampled_index(clip.frame_indices[3] + 1) == 3  # the nearest sampled frame
    assert map_frames([0, 39], clip) == {0: 0, 39: clip.num_frames - 1}
    with pytest.raises(MediaError, match="outside the video"):
        clip.sampled_index(40)
    with pytest.raises(MediaError, match="outside"):
        clip.source_index(clip.num_frames)


def test_container_validates_itself() -> None:
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(MediaError, match="at least one frame"):
        Media([])
    with pytest.raises(MediaError, match="timestamps"):
        Media([frame, frame], [0.0])
    with pytest.raises(MediaError, match="image has one frame"):
        Media([frame, frame])
    image = Media.image(frame)
    assert image.kind == "image" and image.frame_indices == [0] and image.source_num_frames == 1
    assert load_media(image) is image


def test_sampling_default_is_overridable_per_call(tmp_path: Path) -> None:
    path = write_video([np.full((8, 8, 3), 5 * i, np.uint8) for i in range(30)], tmp_path / "v.mp4", fps=10)
    assert load_media(path).num_frames == 16
    assert load_media(path, DEFAULT_SAMPLING.replace(max_frames=4)).frame_indices == [0, 10, 19, 29]
    assert load_media(path, VideoSampling(fps=1.0)).frame_indices == [0, 10, 20]
    assert load_media(path, OFFICIAL_EVAL_SAMPLING).num_frames == 3
    assert read_video(path).num_frames == 30  # the decoder itself keeps every frame unless told
    with pytest.raises(MediaError, match="either fps or num_frames"):
        VideoSampling(fps=1.0, num_frames=4)
    with pytest.raises(MediaError, match="positive"):
        VideoSampling(max_frames=0)
