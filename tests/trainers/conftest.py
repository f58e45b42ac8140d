import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Small models on a 2-core CI machine: more threads than cores makes every step many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
