"""Settings shared by every test."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine each parallel region waits
    for descheduled threads; one thread keeps the tests fast and steady."""
    from dancenet.runtime import torch_threads

    with torch_threads(1):
        yield
