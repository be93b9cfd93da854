import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_DATA = Path(__file__).parent / "data"
OFFICIAL_TINY = TEST_DATA / "official-tiny"


@pytest.fixture(autouse=True)
def _restore_torch_state():
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored after: tiny models are fastest so, and far faster than on an
    oversubscribed two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def official_tiny() -> Path:
    return OFFICIAL_TINY
