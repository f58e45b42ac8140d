"""Image folders and `path,label` file lists: decoding, resizing, caching, and errors naming the file."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from trainers.data import image_files
from trainers.data.datasets import load_dataset


def _png(path, colour, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _folder(root, per_class=5):
    colours = {"cat": (200, 10, 10), "dog": (10, 200, 10), "eel": (10, 10, 200)}
    for name, colour in colours.items():
        for i in range(per_class):
            _png(root / name / f"{i}.png", colour)
    return colours


def test_image_folder_labels_follow_sorted_class_folders_and_split_per_class(tmp_path):
    _folder(tmp_path)
    data = load_dataset("image_folder", root=tmp_path, image_size=8, seed=0)
    assert data.target_names == ["cat", "dog", "eel"] and data.num_classes == 3
    assert data.train_x.shape == (12, 3, 8, 8) and data.test_x.shape == (3, 3, 8, 8)
    assert torch.bincount(data.test_y).tolist() == [1, 1, 1]
    # A flat colour survives the resize; each image's colour says its class.
    for images, labels in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert torch.equal(images[:, :, 0, 0].argmax(1), labels)
    assert (data.train_x == data.train_x[:, :, :1, :1]).all()


def test_image_folder_with_train_and_test_trees(tmp_path):
    _folder(tmp_path / "train", per_class=2)
    _folder(tmp_path / "test", per_class=1)
    data = load_dataset("image_folder", root=tmp_path, image_size=4)
    assert len(data.train_x) == 6 and data.test_y.tolist() == [0, 1, 2]
    _png(tmp_path / "test" / "fox" / "0.png", (1, 2, 3))
    with pytest.raises(ValueError, match=r"^dataset image_folder: class folder .*test/fox has no counterpart in .*train$"):
        load_dataset("image_folder", root=tmp_path, image_size=4)


def test_image_folder_is_cached_next_to_the_data_and_rebuilt_when_it_changes(tmp_path, monkeypatch):
    _folder(tmp_path)
    first = load_dataset("image_folder", root=tmp_path, image_size=8)
    assert (tmp_path / ".simclr_sweep_cache_8px.pt").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(image_files, "read_image", refuse)
    again = load_dataset("image_folder", root=tmp_path, image_size=8)
    assert torch.equal(first.train_x, again.train_x)
    monkeypatch.undo()

    # A rewritten image (new mtime) is decoded again.
    _png(tmp_path / "cat" / "0.png", (255, 255, 255))
    st = os.stat(tmp_path / "cat" / "0.png")
    os.utime(tmp_path / "cat" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = load_dataset("image_folder", root=tmp_path, image_size=8)
    everything = torch.cat([changed.train_x, changed.test_x])
    assert (everything[:, :, 0, 0] == 255).all(dim=1).sum() == 1


def test_file_list_reads_paths_relative_to_the_list(tmp_path):
    rows = []
    for i in range(12):
        _png(tmp_path / "img" / f"{i}.png", (i * 20, 0, 0), size=(6, 6))
        rows.append(f"img/{i}.png,{i % 3}")
    (tmp_path / "list.csv").write_text("# path,label\n" + "\n".join(rows) + "\n\n")
    data = load_dataset("file_list", root=tmp_path / "list.csv", image_size=6, seed=2)
    assert data.num_classes == 3 and len(data.train_x) + len(data.test_x) == 12
    reds = torch.cat([data.train_x, data.test_x])[:, 0, 0, 0].tolist()
    labels = torch.cat([data.train_y, data.test_y]).tolist()
    assert sorted(zip(reds, labels)) == [(i * 20, i % 3) for i in range(12)]
    assert (tmp_path / ".list.csv.6px.cache.pt").is_file()


def test_file_list_is_rebuilt_when_the_list_changes(tmp_path):
    for i in range(4):
        _png(tmp_path / f"{i}.png", (i * 60, 0, 0), size=(4, 4))
    lst = tmp_path / "list.txt"
    lst.write_text("0.png,0\n1.png,1\n2.png,0\n3.png,1\n")
    first = load_dataset("file_list", root=lst, image_size=4)
    lst.write_text("0.png,1\n1.png,0\n2.png,1\n3.png,0\n")
    second = load_dataset("file_list", root=lst, image_size=4)
    by_red = lambda d: dict(zip(torch.cat([d.train_x, d.test_x])[:, 0, 0, 0].tolist(),
                                torch.cat([d.train_y, d.test_y]).tolist()))
    assert by_red(first) == {0: 0, 60: 1, 120: 0, 180: 1}
    assert by_red(second) == {0: 1, 60: 0, 120: 1, 180: 0}


def test_file_list_with_train_and_test_lists(tmp_path):
    for i in range(6):
        _png(tmp_path / f"{i}.png", (i, i, i), size=(4, 4))
    (tmp_path / "train.csv").write_text("0.png,0\n1.png,1\n2.png,2\n3.png,0\n")
    (tmp_path / "test.csv").write_text("4.png,1\n5.png,1\n")
    data = load_dataset("file_list", root=tmp_path, image_size=4)
    assert data.train_y.tolist() == [0, 1, 2, 0] and data.test_y.tolist() == [1, 1]
    assert data.num_classes == 3
    (tmp_path / "test.csv").write_text("4.png,3\n")
    with pytest.raises(ValueError) as err:
        load_dataset("file_list", root=tmp_path, image_size=4)
    assert str(err.value) == (f"dataset file_list: {tmp_path / 'test.csv'}:1: label 3 out of range for 4.png "
                              "(labels must be 0..2, one per class present)")


def test_one_based_labels_are_refused_naming_file_and_line(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", (0, 0, 0), size=(4, 4))
    (tmp_path / "list.csv").write_text("0.png,1\n1.png,2\n2.png,3\n")
    with pytest.raises(ValueError) as err:
        load_dataset("file_list", root=tmp_path / "list.csv", image_size=4)
    assert str(err.value) == (f"dataset file_list: {tmp_path / 'list.csv'}:3: label 3 out of range for 2.png "
                              "(labels must be 0..2, one per class present)")


def test_unreadable_image_is_named(tmp_path):
    _png(tmp_path / "good.png", (0, 0, 0))
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "list.csv").write_text("good.png,0\nbad.png,1\n")
    with pytest.raises(ValueError) as err:
        load_dataset("file_list", root=tmp_path / "list.csv", image_size=4)
    message = str(err.value)
    assert message.startswith(f"dataset file_list: cannot read image {tmp_path / 'bad.png'} (UnidentifiedImageError")
    assert "\n" not in message


def test_missing_image_and_bad_lines_are_named(tmp_path):
    (tmp_path / "list.csv").write_text("gone.png,0\n")
    with pytest.raises(ValueError, match=r"^dataset file_list: missing file .*gone\.png$"):
        load_dataset("file_list", root=tmp_path / "list.csv", image_size=4)
    (tmp_path / "list.csv").write_text("gone.png;0\n")
    with pytest.raises(ValueError, match=r"^dataset file_list: .*list\.csv:1: expected `path,label` \(got 'gone\.png;0'\)$"):
        load_dataset("file_list", root=tmp_path / "list.csv", image_size=4)
    (tmp_path / "list.csv").write_text("a.png,cat\n")
    with pytest.raises(ValueError, match=r"^dataset file_list: .*list\.csv:1: label must be an integer \(got 'cat'\)$"):
        load_dataset("file_list", root=tmp_path / "list.csv", image_size=4)


def test_missing_roots_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"^dataset file_list: no file list .*nothing\.csv \(expected `path,label` lines\)$"):
        load_dataset("file_list", root=tmp_path / "nothing.csv")
    with pytest.raises(ValueError, match=r"^dataset image_folder: no folder .*nowhere \(point data_root at a folder"):
        load_dataset("image_folder", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"^dataset image_folder: data_root is not set"):
        load_dataset("image_folder")


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    Image.fromarray(np.full((5, 5), 77, dtype=np.uint8), "L").save(tmp_path / "g.png")
    Image.new("RGBA", (5, 5), (1, 2, 3, 128)).save(tmp_path / "a.png")
    image = image_files.read_image(tmp_path / "g.png", 5, dataset="t")
    assert image.shape == (3, 5, 5) and (image == 77).all()
    assert image_files.read_image(tmp_path / "a.png", 5, dataset="t")[:, 0, 0].tolist() == [1, 2, 3]
