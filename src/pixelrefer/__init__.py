"""pixelrefer: region-level understanding of images and videos (PixelRefer and PixelRefer-Lite)."""

from pixelrefer.config import PixelReferConfig
from pixelrefer.inference.api import Answer, AskRequest, ChatSession, PixelRefer
from pixelrefer.inference.generation import GenerationConfig
from pixelrefer.regions import Region

__all__ = ["PixelRefer", "PixelReferConfig", "Region", "GenerationConfig", "AskRequest", "Answer", "ChatSession"]
__version__ = "0.1.0"
