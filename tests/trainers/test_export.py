"""An exported encoder: torchvision's ResNets load it as is; the other stems and the convnet come back
through trainers.evaluation.export.load_encoder; the file carries its configuration and scores."""
import pytest
import torch
import torchvision

from trainers import TrainConfig
from trainers.evaluation.export import (
    EncoderFileError, encoder_config, export_checkpoint, load_encoder, read_encoder, save_encoder,
)
from trainers.model.networks import build_model
from trainers.training.state import save_checkpoint


def _trained_like(cfg: TrainConfig) -> torch.nn.Module:
    """A backbone whose weights and BN statistics are not their initial values."""
    torch.manual_seed(1)
    backbone = build_model(cfg).backbone
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return backbone.eval()


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_torchvision_loads_an_imagenet_stem_resnet_missing_only_fc_and_gives_our_features(tmp_path, backbone):
    cfg = TrainConfig.from_dict({"backbone": backbone, "stem": "imagenet"})
    ours = _trained_like(cfg)
    path = save_encoder(tmp_path / "encoder.pt", ours, cfg, scores={"best.knn_top1": 0.5})
    state = torch.load(path, weights_only=True)
    theirs = getattr(torchvision.models, backbone)()
    result = theirs.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    theirs.fc = torch.nn.Identity()
    theirs.eval()
    batch = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(theirs(batch), ours(batch))
        assert torch.equal(load_encoder(path)(batch), ours(batch))


@pytest.mark.parametrize("options", [{"backbone": "resnet18", "stem": "cifar"}, {"backbone": "resnet18", "stem": "stl"},
                                     {"backbone": "convnet", "width": 2}])
def test_other_stems_and_the_convnet_come_back_through_load_encoder(tmp_path, options):
    cfg = TrainConfig.from_dict({"dataset": "shapes", **options})
    ours = _trained_like(cfg)
    path = save_encoder(tmp_path / "encoder.pt", ours, cfg, scores={"best.knn_top1": 0.25, "last.loss": float("nan")},
                        source={"trial_id": "t1"})
    loaded = load_encoder(path)
    assert not loaded.training
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(batch), ours(batch))
    state, meta = read_encoder(path)
    assert meta["key_names"] == ("sequential" if options["backbone"] == "convnet" else "torchvision")
    assert meta["scores"] == {"best.knn_top1": 0.25}  # NaN is not a score
    assert meta["source"] == {"trial_id": "t1"}
    assert encoder_config(path) == cfg


def test_a_trainer_checkpoint_exports_its_backbone_and_epoch(tmp_path):
    cfg = TrainConfig.from_dict({"dataset": "shapes", "backbone": "convnet"})
    torch.manual_seed(2)
    model = build_model(cfg)
    save_checkpoint(tmp_path / "trainer.pt", {"config": cfg.to_dict(), "epoch": 3, "model": model.state_dict(),
                                              "metrics": {"knn_top1": 0.4, "loss": 5.1}})
    path = export_checkpoint(tmp_path / "trainer.pt", tmp_path / "encoder.pt")
    _, meta = read_encoder(path)
    assert meta["source"]["epoch"] == 3
    assert meta["scores"] == {"last.knn_top1": 0.4, "last.loss": 5.1}
    batch = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_encoder(path)(batch), model.backbone.eval()(batch))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.pt", "trainer.pt"]  # nothing left aside


def test_a_file_that_is_not_an_encoder_is_refused_in_one_line(tmp_path):
    save_checkpoint(tmp_path / "trainer.pt", {"config": {}})
    with pytest.raises(EncoderFileError, match=r"^encoder: .*trainer.pt is not a simclr-sweep encoder file \(no "
                                               r"'simclr-sweep-encoder' metadata; write one with `simclr-sweep export`\)$"):
        load_encoder(tmp_path / "trainer.pt")
    with pytest.raises(EncoderFileError, match=r"^encoder: no file at .*missing.pt$"):
        load_encoder(tmp_path / "missing.pt")
