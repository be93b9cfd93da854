import platform

import pytest

from pixelrefer.utils.memory import cap_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena cap is a glibc setting")
def test_arena_cap_is_accepted_by_glibc():
    assert cap_malloc_arenas(8) is True
