"""Fine-tuning from a label fraction and for segmentation, on tiny generated data."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trainers.evaluation.finetune import (FinetuneConfig, balanced_subset, finetune_classifier, finetune_segmentation,
                               load_segmentation_pairs, mean_iou, spatial_trunk)


def _encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_balanced_subset_takes_the_fraction_of_each_class_by_seed():
    labels = torch.tensor([0] * 100 + [1] * 50 + [2] * 7)
    idx = balanced_subset(labels, 0.1, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [10, 5, 1]  # at least one per class
    assert torch.equal(idx, balanced_subset(labels, 0.1, seed=3))
    assert not torch.equal(idx, balanced_subset(labels, 0.1, seed=4))
    assert balanced_subset(labels, 1.0, seed=0).tolist() == list(range(157))
    with pytest.raises(ValueError, match=r"^label_fraction: must be in \(0, 1\] \(got 0\)$"):
        balanced_subset(labels, 0, seed=0)


def _two_class_images(n, seed):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    # Class 1 has a bright square in the top-left quadrant; both have random colour noise.
    x = torch.randint(0, 120, (n, 3, 8, 8), generator=gen, dtype=torch.uint8)
    x[y == 1, :, :4, :4] += 130
    return x, y


def test_finetune_classifier_learns_and_leaves_the_encoder_alone():
    x, y = _two_class_images(200, seed=0)
    xt, yt = _two_class_images(100, seed=1)
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    cfg = FinetuneConfig(epochs=15, batch_size=32, lr=0.05)
    acc = finetune_classifier(enc, x, y, xt, yt, num_classes=2, label_fraction=1.0, cfg=cfg)
    assert acc > 0.9
    for k, v in enc.state_dict().items():
        assert torch.equal(v, before[k]), k
    few = finetune_classifier(enc, x, y, xt, yt, num_classes=2, label_fraction=0.01, cfg=cfg)
    assert 0.0 <= few <= 1.0


def test_finetune_classifier_applies_the_augmentation_to_training_batches():
    x, y = _two_class_images(40, seed=2)
    seen = []

    def augment(batch, gen):
        seen.append(batch.dtype)
        return batch.float() / 255

    finetune_classifier(_encoder(), x, y, x, y, num_classes=2, cfg=FinetuneConfig(epochs=2, batch_size=20),
                        augment=augment)
    assert seen == [torch.uint8] * 4


def _mean_iou_reference(pred, target, num_classes, ignore=255):
    ious = []
    for c in range(num_classes):
        inter = union = 0
        for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
            if t == ignore:
                continue
            inter += (p == c and t == c)
            union += (p == c or t == c)
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


def test_mean_iou_matches_a_direct_count():
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 6, 6), generator=gen)
    target[0, 0] = 255
    pred = torch.where(torch.rand(3, 6, 6, generator=gen) < 0.7, target, torch.randint(0, 4, (3, 6, 6), generator=gen))
    pred[0, 0] = 1  # predictions on ignored pixels count nowhere
    pred[pred == 255] = 0
    assert mean_iou(pred, target, num_classes=5) == pytest.approx(_mean_iou_reference(pred, target, 5), abs=1e-12)
    assert mean_iou(target.clamp(max=3), target.clamp(max=3), num_classes=4) == 1.0


def test_spatial_trunk_cuts_at_global_pooling():
    trunk = spatial_trunk(_encoder())
    assert trunk(torch.rand(2, 3, 8, 8)).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match=r"^segmentation: the encoder has no global pooling layer to cut at$"):
        spatial_trunk(nn.Sequential(nn.Conv2d(3, 3, 1)))


def _write_pairs(folder, n, seed, size=8):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        mask = np.zeros((size, size), dtype=np.uint8)
        r, c = rng.integers(0, size - 3, 2)
        mask[r:r + 4, c:c + 4] = 1
        mask[0, 0] = 255  # an ignored pixel
        image = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
        image[mask == 1] += 150
        Image.fromarray(image).save(folder / f"img{seed}_{i}.png")
        Image.fromarray(mask, "L").save(folder / f"map{seed}_{i}.png")
        lines.append(f"img{seed}_{i}.png,map{seed}_{i}.png")
    (folder / f"pairs{seed}.csv").write_text("\n".join(lines) + "\n")
    return folder / f"pairs{seed}.csv"


def test_segmentation_finetuning_reaches_a_high_mean_iou(tmp_path):
    train_x, train_m = load_segmentation_pairs(_write_pairs(tmp_path, 48, seed=0), 8, num_classes=2)
    test_x, test_m = load_segmentation_pairs(_write_pairs(tmp_path, 16, seed=1), 8, num_classes=2)
    assert train_x.shape == (48, 3, 8, 8) and train_m.shape == (48, 8, 8) and train_m.dtype == torch.int64
    assert set(train_m.unique().tolist()) == {0, 1, 255}
    miou = finetune_segmentation(_encoder(), train_x, train_m, test_x, test_m, num_classes=2,
                                 cfg=FinetuneConfig(epochs=30, batch_size=16, lr=0.1))
    assert miou > 0.8


def test_segmentation_map_of_the_wrong_size_is_named(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("L", (8, 6)).save(tmp_path / "a_map.png")
    (tmp_path / "pairs.csv").write_text("a.png,a_map.png\n")
    with pytest.raises(ValueError) as err:
        load_segmentation_pairs(tmp_path / "pairs.csv", 8)
    assert str(err.value) == (f"dataset segmentation: label map {tmp_path / 'a_map.png'} is 8x6 but its image "
                              f"{tmp_path / 'a.png'} is 8x8")


def test_segmentation_class_out_of_range_and_bad_line_are_named(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("L", (4, 4), 7).save(tmp_path / "a_map.png")
    (tmp_path / "pairs.csv").write_text("a.png,a_map.png\n")
    with pytest.raises(ValueError, match=r"^dataset segmentation: label map .*a_map\.png holds class 7, out of range 0\.\.2 \(or 255 to ignore\)$"):
        load_segmentation_pairs(tmp_path / "pairs.csv", 4, num_classes=3)
    (tmp_path / "pairs.csv").write_text("a.png\n")
    with pytest.raises(ValueError, match=r"^dataset segmentation: .*pairs\.csv:1: expected `image,labelmap` \(got 'a\.png'\)$"):
        load_segmentation_pairs(tmp_path / "pairs.csv", 4)
