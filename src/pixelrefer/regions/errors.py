"""The one error type of the region layer."""


class RegionError(ValueError):
    """A region cannot be turned into a usable mask (empty, wrong size, out of the image, ...)."""
