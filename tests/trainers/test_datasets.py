"""The DATASETS registry, DataSplits, and the generated shapes set."""
import time

import pytest
import torch

from trainers.data import shapes
from trainers.data.datasets import DATASETS, DataSplits, load_dataset


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match=r"^dataset: must be one of .*shapes.* \(got 'shapez'\)$"):
        load_dataset("shapez")


def test_shapes_splits_have_the_declared_layout():
    data = load_dataset("shapes", size=200, seed=3)
    assert isinstance(data, DataSplits)
    assert data.train_x.shape == (200, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (66, 3, 32, 32) and data.test_x.dtype == torch.uint8
    assert data.pretrain is data.train_x
    assert data.train_y.dtype == torch.int64 and data.test_y.dtype == torch.int64
    assert data.num_classes == 10 and data.task == "classification"
    assert data.target_names == list(shapes.SHAPES)
    assert torch.bincount(data.train_y, minlength=10).tolist() == [20] * 10


def test_shapes_default_sizes_and_generation_time():
    load_dataset("shapes", size=20)  # first-call set-up of torch's kernels is not generation
    # CPU time of one thread (about 0.3 s): wall time, or idle threads spinning, would measure
    # whoever else shares the machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.process_time()
        data = load_dataset("shapes")
        elapsed = time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    assert (len(data.train_x), len(data.test_x)) == (3000, 1000)
    assert elapsed < 1.0, f"generation took {elapsed:.2f} s of CPU"


def test_shapes_is_deterministic_from_the_seed():
    a, b, c = (load_dataset("shapes", size=100, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert not torch.equal(a.train_x[:33], a.test_x[:33])  # train and test come from distinct streams


def test_shapes_each_image_shows_a_shape_on_a_contrasting_background():
    data = load_dataset("shapes", size=300, seed=0)
    x = data.train_x.float() / 255
    # Foreground covers a real part of the image, background the rest: per-image spread is large.
    spread = (x.amax(dim=(2, 3)) - x.amin(dim=(2, 3))).norm(dim=1)
    assert spread.min() > 0.3


def test_shapes_class_is_not_readable_from_mean_colour():
    data = load_dataset("shapes", size=2000, seed=0)
    means = data.train_x.float().mean(dim=(2, 3))
    test_means = data.test_x.float().mean(dim=(2, 3))
    # Nearest class centroid in mean-colour space: close to chance (10%).
    centroids = torch.stack([means[data.train_y == c].mean(0) for c in range(10)])
    pred = torch.cdist(test_means, centroids).argmin(1)
    assert (pred == data.test_y).float().mean() < 0.2


def test_shape_masks_are_distinct_from_each_other():
    # One pose and one pair of colours for every class: each pair of shapes differs in many pixels.
    images = [shapes.draw_shapes(torch.tensor([c]), torch.Generator().manual_seed(5))[0] for c in range(10)]
    masks = [(img.float() - img.float().flatten(1).median(1).values[:, None, None]).abs().sum(0) > 60
             for img in images]
    for a in range(10):
        assert masks[a].sum() > 20, shapes.CLASS_NAMES[a]
        for b in range(a):
            assert (masks[a] ^ masks[b]).sum() > 15, (shapes.CLASS_NAMES[a], shapes.CLASS_NAMES[b])


def test_registry_maps_names_to_loaders():
    assert callable(DATASETS["shapes"])
