"""atheris harness: COCO RLE (compressed strings, uncompressed lists) through the validator and the decoder.

Invariants: a decoded mask has the declared size and re-encodes to an RLE that decodes to the same mask; the
uncompressed runs of the mask equal the counts parsed from its compressed string.
"""

from __future__ import annotations

import fuzz_common
import numpy as np

with fuzz_common.atheris.instrument_imports(include=["pixelrefer"]):
    from pixelrefer.regions import codecs


def target(fdp) -> None:
    h, w = fuzz_common.small_size(fdp), fuzz_common.small_size(fdp)
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:  # compressed string from the RLE alphabet (most inputs parse)
        counts = "".join(chr(48 + fdp.ConsumeIntInRange(0, 63)) for _ in range(fdp.ConsumeIntInRange(0, 40)))
    elif kind == 1:  # any bytes
        counts = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    elif kind == 2:  # any text
        counts = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    else:  # an uncompressed run list
        counts = [fdp.ConsumeIntInRange(-2, 60) for _ in range(fdp.ConsumeIntInRange(0, 30))]
    rle = {"size": [h, w], "counts": counts}
    mask = codecs.decode_rle(rle)
    assert mask.shape == (h, w) and mask.dtype == bool
    again = codecs.encode_rle(mask)
    assert np.array_equal(codecs.decode_rle(again), mask)
    assert codecs.compressed_counts(again["counts"]).tolist() == codecs.uncompressed_rle(mask)["counts"]


if __name__ == "__main__":
    fuzz_common.run(target)
