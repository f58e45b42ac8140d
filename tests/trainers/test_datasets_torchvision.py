"""CIFAR-10/100 and STL-10 through torchvision, on fake files in the real on-disk layouts."""
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from PIL import Image
from torchvision.datasets import CIFAR10, STL10

from trainers.data.datasets import load_dataset


@pytest.fixture
def trust_checksums(monkeypatch):
    # The fake files cannot match the published md5 sums; everything else is torchvision's own code.
    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_cifar10(root, per_batch=4, n_test=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _pickle(folder / name, {"data": data, "labels": labels})
        batches[name] = (data, labels)
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return batches


def test_cifar10_loads_as_uint8_nchw_in_file_order(tmp_path, trust_checksums):
    batches = _write_cifar10(tmp_path)
    data = load_dataset("cifar10", root=tmp_path)
    want = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (20, 3, 32, 32)
    assert data.train_x.is_contiguous()
    assert torch.equal(data.train_x, torch.from_numpy(want))
    assert data.train_y.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert torch.equal(data.test_x, torch.from_numpy(batches["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert data.pretrain is data.train_x
    assert data.num_classes == 10 and data.target_names[3] == "class3"


def test_cifar10_size_takes_a_seeded_subset_and_image_size_resizes(tmp_path, trust_checksums):
    _write_cifar10(tmp_path)
    full = load_dataset("cifar10", root=tmp_path)
    a = load_dataset("cifar10", root=tmp_path, size=7, seed=1)
    b = load_dataset("cifar10", root=tmp_path, size=7, seed=1)
    assert len(a.train_x) == 7 and torch.equal(a.train_x, b.train_x)
    rows = [next(i for i in range(20) if torch.equal(full.train_x[i], img)) for img in a.train_x]
    assert full.train_y[rows].tolist() == a.train_y.tolist()
    assert len(a.test_x) == 6  # the score's split is never cut
    small = load_dataset("cifar10", root=tmp_path, image_size=16)
    assert small.train_x.shape == (20, 3, 16, 16)
    # Antialiased bilinear, as Pillow resizes.
    pil = [np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).resize((16, 16), Image.Resampling.BILINEAR))
           for img in full.train_x]
    want = torch.from_numpy(np.stack(pil)).permute(0, 3, 1, 2).float()
    assert (small.train_x.float() - want).abs().max() <= 1


def test_cifar100_uses_fine_labels(tmp_path, trust_checksums):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 8), ("test", 4)):
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                "fine_labels": list(range(90, 90 + n)), "coarse_labels": [0] * n})
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)]})
    data = load_dataset("cifar100", root=tmp_path)
    assert data.train_y.tolist() == list(range(90, 98)) and data.num_classes == 100
    assert data.target_names[99] == "fine99"


def test_stl10_pretrains_on_unlabeled_plus_train(tmp_path, trust_checksums):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in (("train", 5), ("unlabeled", 3), ("test", 4)):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        # STL-10's binary stores each channel column-major.
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        arrays[split] = images
        if split != "unlabeled":
            labels = rng.integers(1, 11, n, dtype=np.uint8)  # 1-based on disk
            labels.tofile(folder / f"{split}_y.bin")
            arrays[split + "_y"] = labels
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    data = load_dataset("stl10", root=tmp_path)
    assert data.pretrain.shape == (8, 3, 96, 96)
    assert torch.equal(data.pretrain, torch.from_numpy(np.concatenate([arrays["unlabeled"], arrays["train"]])))
    assert torch.equal(data.train_x, torch.from_numpy(arrays["train"]))
    assert data.train_y.tolist() == (arrays["train_y"].astype(int) - 1).tolist()
    assert torch.equal(data.test_x, torch.from_numpy(arrays["test"]))
    assert data.target_names == [f"c{i}" for i in range(10)]
    assert load_dataset("stl10", root=tmp_path, image_size=32).pretrain.shape == (8, 3, 32, 32)


@pytest.mark.parametrize("name, title, folder", [("cifar10", "CIFAR-10", "cifar-10-batches-py"),
                                                  ("cifar100", "CIFAR-100", "cifar-100-python"),
                                                  ("stl10", "STL-10", "stl10_binary")])
def test_missing_files_without_download_name_the_root(tmp_path, name, title, folder):
    with pytest.raises(ValueError) as err:
        load_dataset(name, root=tmp_path / "x" / "y")
    assert str(err.value) == (f"dataset {name}: no {title} files under {tmp_path / 'x' / 'y'} "
                              f"(set download: true, or point data_root at a folder holding {folder})")


def test_corrupted_files_give_one_line_naming_the_folder(tmp_path):
    _write_cifar10(tmp_path)  # md5 sums do not match the published ones
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", root=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"dataset cifar10: CIFAR-10 files under {tmp_path / 'cifar-10-batches-py'} "
                              "are incomplete or corrupted")
