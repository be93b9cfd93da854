"""The region layer: everything between what a user points at and the binary masks the model consumes.

Contract used by the model side (``pixelrefer.processing``):

* :class:`Region` is the one region type. ``Region.resolve(height, width, num_frames, segmenter=None)``
  returns a :class:`ResolvedRegion` whose ``masks`` maps frame index -> ``bool`` array of shape (H, W).
* :func:`as_region` turns anything region-like (a ``Region``, a 2-D mask array) into a ``Region``.
"""

from pixelrefer.regions.region import Region, RegionError, ResolvedRegion, as_region

__all__ = ["Region", "RegionError", "ResolvedRegion", "as_region"]
