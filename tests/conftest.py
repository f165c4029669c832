import os

import torch

# Without a GPU, the Triton kernels run in Triton's interpreter; the variable must be set before they are
# decorated, i.e. before anything imports linseq.ops.lightning.triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; oversubscription makes small ops slower, not faster
    torch.set_num_threads(min(2, os.cpu_count() or 1))
