"""Data at the seeds' scale: declared image sizes, ImageNet-style folders, the memory-mapped cache."""
import os
import subprocess
import sys

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from trainers.config import ConfigError, TrainConfig
from trainers.data import cache, image_files
from trainers.data.datasets import load_dataset
from trainers.data.feeder import DeviceFeeder
from trainers.evaluation.finetune import FinetuneConfig, finetune_classifier
from trainers.evaluation.monitors import embed
from trainers.training.loop import fit

CLASSES = 4


def _jpeg_imagenet(root, *, per_class=(12, 3), side=112, seed=0):
    """A generated ImageNet-layout folder of JPEGs: a class is a colour plus noise, sides vary."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class):
        for c in range(CLASSES):
            for i in range(count):
                base = np.zeros((side, side + 8 * (i % 3), 3), np.uint8)
                base[..., c % 3] = 160 + 40 * (c // 3)
                noisy = np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)
                path = root / split / f"n{c:08d}" / f"{i}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(noisy).save(path, quality=90)
    return root


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory):
    return _jpeg_imagenet(tmp_path_factory.mktemp("imagenet"), per_class=(60, 15))


def test_an_imagenet_style_folder_gets_its_own_splits_and_the_crop_pair(imagenet_folder, tmp_path):
    data = load_dataset("image_folder", root=imagenet_folder, image_size=96, stored_size=112, cache_dir=tmp_path)
    assert data.pretrain.shape == (240, 3, 112, 112) and cache.is_mapped(data.pretrain)
    assert data.train_x.shape == (240, 3, 96, 96) and data.test_x.shape == (60, 3, 96, 96)
    assert data.image_size == 96 and torch.bincount(data.test_y).tolist() == [15] * CLASSES
    # Evaluation sees the centre crop of the stored image, not a copy of it.
    assert torch.equal(data.train_x, data.pretrain[:, :, 8:104, 8:104])
    assert data.train_x.untyped_storage().data_ptr() == data.pretrain.untyped_storage().data_ptr()


def test_pretraining_knn_and_linear_probe_at_96px(imagenet_folder, tmp_path):
    cfg = TrainConfig.from_dict({"dataset": "image_folder", "data_root": str(imagenet_folder), "image_size": 96,
                                 "stored_size": 112, "data_cache": str(tmp_path), "backbone": "convnet",
                                 "dataset_size": 64, "epochs": 1, "batch_size": 32, "linear_eval": True,
                                 "knn_k": 20})
    metrics = fit(cfg)["metrics"]
    assert np.isfinite(metrics["loss"])
    assert 0.0 <= metrics["knn_top1"] <= 1.0 and 0.0 <= metrics["linear_top1"] <= 1.0


def test_val_classes_differing_from_train_are_refused_naming_the_folder(tmp_path):
    _jpeg_imagenet(tmp_path, per_class=(2, 1), side=16)
    for image in (tmp_path / "val" / f"n{CLASSES - 1:08d}").iterdir():
        image.unlink()
    (tmp_path / "val" / f"n{CLASSES - 1:08d}").rmdir()
    with pytest.raises(ValueError, match=rf"^dataset image_folder: {tmp_path / 'val'} has no class folder "
                                         rf"n{CLASSES - 1:08d} \(every class of .*train needs held-out images\)$"):
        load_dataset("image_folder", root=tmp_path, image_size=16, cache_dir=tmp_path / "cache")


def test_an_image_size_the_backbone_cannot_take_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^image_size: must be >= 32 for backbone resnet18 with stem imagenet \(got 24\)$"):
        TrainConfig.from_dict({"backbone": "resnet18", "stem": "imagenet", "image_size": 24})
    with pytest.raises(ConfigError, match=r"^stored_size: must be >= image_size"):
        TrainConfig.from_dict({"image_size": 96, "stored_size": 64})


def test_batches_from_the_map_equal_batches_from_the_in_memory_tensor(imagenet_folder, tmp_path):
    mapped = load_dataset("image_folder", root=imagenet_folder, image_size=32, cache_dir=tmp_path).pretrain
    in_memory = mapped.clone()
    from_map, from_memory = DeviceFeeder(mapped, "cpu"), DeviceFeeder(in_memory, "cpu")
    assert from_map.mapped and not from_map.resident and from_memory.resident
    gen = lambda: torch.Generator().manual_seed(7)
    pairs = list(zip(from_map.batches(48, gen()), from_memory.batches(48, gen()), strict=True))
    assert len(pairs) == 5 and all(torch.equal(a, b) for a, b in pairs)
    # A consumer that stops early leaves no gathering thread behind.
    next(iter(from_map.batches(48, gen())))
    assert not [t for t in __import__("threading").enumerate() if t.name == "feeder-gather"]


def test_a_seeded_split_and_a_capped_set_keep_serving_from_the_map(imagenet_folder, tmp_path):
    folder = imagenet_folder / "train"  # a plain class-per-folder set: the seeded split
    whole, _ = image_files.load_image_folder(folder, 32, cache_dir=tmp_path)
    reference = whole.images.clone()  # the rows as the split copied them before, by fancy indexing
    train_idx, test_idx = image_files.stratified_split(whole.labels, image_files.TEST_FRACTION, 5)
    capped = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(5))[:100].sort().values]
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    pixel_mean = lambda x: x.mean(dim=(2, 3))  # noqa: E731
    for size, train_rows in ((None, train_idx), (100, capped)):
        data = load_dataset("image_folder", root=folder, image_size=32, size=size, seed=5, cache_dir=tmp_path)
        for split, rows in ((data.pretrain, train_rows), (data.train_x, train_rows), (data.test_x, test_idx)):
            assert isinstance(split, cache.MappedRows) and cache.is_mapped(split)
            assert split.untyped_storage().data_ptr() == whole.images.untyped_storage().data_ptr()
            assert split.shape == (len(rows), 3, 32, 32) and torch.equal(split, reference[rows])
        assert torch.equal(data.train_y, whole.labels[train_rows]) and torch.equal(data.test_y, whole.labels[test_idx])
        # What the trial sees: its batches and its evaluation's chunks, bit for bit the copied rows'.
        feeder = DeviceFeeder(data.pretrain, "cpu")
        assert feeder.mapped and not feeder.resident
        pairs = list(zip(feeder.batches(32, gen()), DeviceFeeder(reference[train_rows], "cpu").batches(32, gen()),
                         strict=True))
        assert len(pairs) == len(train_rows) // 32 and all(torch.equal(a, b) for a, b in pairs)
        assert torch.equal(embed(pixel_mean, data.test_x, batch_size=16),
                           embed(pixel_mean, reference[test_idx], batch_size=16))
        # Fine-tuning gathers its label subset's batches from the map: the same run as on the copy.
        runs = []
        for train_x, test_x in ((data.train_x, data.test_x), (reference[train_rows], reference[test_idx])):
            torch.manual_seed(0)
            encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.Flatten())
            runs.append(finetune_classifier(encoder, train_x, data.train_y, test_x, data.test_y, num_classes=CLASSES,
                                            label_fraction=0.5, cfg=FinetuneConfig(epochs=1, batch_size=32)))
        assert runs[0] == runs[1]
    # The crop pair on a capped split: the centre crop is a view of the map under the same rows.
    data = load_dataset("image_folder", root=folder, image_size=24, stored_size=32, size=100, seed=5,
                        cache_dir=tmp_path)
    assert isinstance(data.train_x, cache.MappedRows) and cache.is_mapped(data.train_x)
    assert torch.equal(data.pretrain, reference[capped])
    assert torch.equal(data.train_x, reference[capped][..., 4:28, 4:28]) and data.image_size == 24
    assert torch.equal(data.test_x[3:9], reference[test_idx][3:9, :, 4:28, 4:28])


def test_a_touched_source_or_a_truncated_file_is_rebuilt_and_said(tmp_path, capfd):
    root = _jpeg_imagenet(tmp_path / "data", per_class=(3, 1), side=16)
    first = load_dataset("image_folder", root=root, image_size=16, cache_dir=tmp_path / "cache").pretrain.clone()
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2  # train and val
    image = root / "train" / "n00000000" / "0.JPEG"
    Image.new("RGB", (16, 16), (255, 255, 255)).save(image)
    st = os.stat(image)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    capfd.readouterr()
    # A copy: truncating a file under a live map of it would fault that map (SIGBUS).
    changed = load_dataset("image_folder", root=root, image_size=16, cache_dir=tmp_path / "cache").pretrain.clone()
    said = capfd.readouterr().err
    assert "rebuilding the cache" in said and "its sources changed" in said
    assert not torch.equal(first, changed) and (changed[0] >= 250).all()
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2  # the stale data file is gone
    data_file = max((tmp_path / "cache").glob("train*.u8"), key=lambda p: p.stat().st_size)
    with open(data_file, "r+b") as handle:
        handle.truncate(100)
    again = load_dataset("image_folder", root=root, image_size=16, cache_dir=tmp_path / "cache").pretrain
    assert "(truncated)" in capfd.readouterr().err and torch.equal(again, changed)


def test_cache_errors_name_the_directory_in_one_line(tmp_path, monkeypatch):
    root = _jpeg_imagenet(tmp_path / "data", per_class=(2, 1), side=16)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(ValueError, match=rf"^dataset image_folder: cache directory {blocked}/sub is not writable "
                                         r"\(.*\); set data_cache to a writable node-local directory$"):
        load_dataset("image_folder", root=root, image_size=16, cache_dir=blocked / "sub")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    need = 8 * 3 * 16 * 16
    with pytest.raises(ValueError, match=rf"^dataset image_folder: cache directory {tmp_path / 'c'} has 10 bytes "
                                         rf"free but the cache needs {need} bytes; free space there or set data_cache "
                                         r"to a larger disk$"):
        load_dataset("image_folder", root=root, image_size=16, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.u8")) and not list((tmp_path / "c").glob("*.pt"))


# A trial's map of the cache, as trainers.data.cache makes it (numpy alone: importing torch thrice is slow).
_CHILD = """
import sys
import numpy as np
data = np.memmap(sys.argv[1], dtype=np.uint8, mode=sys.argv[2])
print(int(data.sum(dtype=np.int64)), flush=True)  # touches every page
sys.stdin.read()
"""


def test_three_processes_mapping_one_cache_share_its_pages(imagenet_folder, tmp_path):
    images = load_dataset("image_folder", root=imagenet_folder, image_size=64, cache_dir=tmp_path).pretrain
    data_file = str(max(tmp_path.glob("*.u8"), key=lambda p: p.stat().st_size))
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, data_file, cache.MAP_MODE],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        sums = {child.stdout.readline().strip() for child in children}
        assert sums == {str(int(images.sum(dtype=torch.int64)))}
        for child in children:
            mapping = next(m for m in psutil.Process(child.pid).memory_maps(grouped=True) if m.path == data_file)
            assert mapping.rss >= 240 * 3 * 64 * 64 * 0.9  # all pages touched
            assert mapping.pss <= mapping.rss / 2  # shared three ways, not a copy each
    finally:
        for child in children:
            child.stdin.close()
            child.wait(timeout=30)


@pytest.fixture
def trust_stl10(monkeypatch):
    from torchvision.datasets import STL10
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)


def test_stl10_at_96px_pretrains_and_evaluates(tmp_path, trust_stl10):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for split, n in (("train", 40), ("unlabeled", 24), ("test", 20)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            np.tile(np.arange(1, 11, dtype=np.uint8), n // 10).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    data = load_dataset("stl10", root=tmp_path, image_size=96)
    assert data.pretrain.shape == (64, 3, 96, 96) and data.image_size == 96
    cfg = TrainConfig.from_dict({"dataset": "stl10", "data_root": str(tmp_path), "image_size": 96,
                                 "backbone": "convnet", "epochs": 1, "batch_size": 32, "knn_k": 5})
    metrics = fit(cfg)["metrics"]
    assert np.isfinite(metrics["loss"]) and 0.0 <= metrics["knn_top1"] <= 1.0
