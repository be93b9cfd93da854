"""The one error type of the region layer."""


from pixelrefer.errors import RegionError

__all__ = ["RegionError"]
