"""The image-processor settings of a checkpoint (:class:`ImageProcessorSettings`), defined below both the model
config that stores them and the processing that applies them (:mod:`pixelrefer.processing.image`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from pixelrefer.errors import ConfigError

# PIL resampling filters by the integer a preprocessor_config.json stores (PIL.Image.Resampling values).
RESAMPLE_FILTERS: dict[int, Image.Resampling] = {int(f): f for f in Image.Resampling}


def _channels(name: str, value: Any) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, int | float) else list(value)
    if len(values) != 3 or not all(isinstance(v, int | float) for v in values):
        raise ConfigError(f"image processor {name} must be one number or three (RGB), got {value!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageProcessorSettings:
    """The image-processor settings of a checkpoint, saved in its ``config.json`` as ``image_processor``.

    Defaults are the released SigLIP-NaViT tower's ``preprocessor_config.json`` (spec section 1.4). Official
    checkpoints take every field from their own file (see :func:`pixelrefer.model.convert.image_settings_from_official`).
    """

    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    do_rescale: bool = True
    do_normalize: bool = True
    resample: int = int(Image.Resampling.BICUBIC)
    min_pixels: int = 56 * 56

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_mean", _channels("image_mean", self.image_mean))
        object.__setattr__(self, "image_std", _channels("image_std", self.image_std))
        if any(s == 0 for s in self.image_std):
            raise ConfigError(f"image processor image_std must not contain 0, got {list(self.image_std)}")
        if self.resample not in RESAMPLE_FILTERS:
            raise ConfigError(
                f"image processor resample={self.resample!r} is not a PIL filter; expected one of {sorted(RESAMPLE_FILTERS)}"
            )
        if not self.rescale_factor > 0:
            raise ConfigError(f"image processor rescale_factor must be > 0, got {self.rescale_factor!r}")
        if int(self.min_pixels) != self.min_pixels or self.min_pixels < 1:
            raise ConfigError(f"image processor min_pixels must be a positive integer, got {self.min_pixels!r}")

    @classmethod
    def from_dict(cls, fields: dict[str, Any] | ImageProcessorSettings | None) -> ImageProcessorSettings:
        if fields is None:
            return cls()
        if isinstance(fields, ImageProcessorSettings):
            return fields
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown image processor setting(s) {sorted(unknown)}")
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_mean"], out["image_std"] = list(self.image_mean), list(self.image_std)
        return out
