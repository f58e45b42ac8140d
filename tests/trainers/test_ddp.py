"""DDP on the CPU with 2 gloo processes equals one process holding the global batch."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from trainers import TrainConfig, fit
from trainers.losses import contrastive_loss
from trainers.model.networks import build_model
from trainers.training.distributed import GlobalBatchNorm, convert_global_bn

WORLD = 2
LOCAL = 4  # rows per rank and view
MODEL = TrainConfig(projection_dim=8, projection_hidden_dim=16, width=1)
VARIANTS = [
    dict(loss="nt_xent", similarity="cosine", temperature=0.5),
    dict(loss="nt_xent", similarity="mahalanobis", temperature=2.0, hidden_norm=True),
    dict(loss="nt_xent", similarity="euclidean", temperature=1.0, hidden_norm=False),
    dict(loss="nt_logistic", similarity="dot", temperature=0.5),
    dict(loss="margin_triplet", similarity="cosine", margin=0.5, semi_hard=True),
]


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    shape = (WORLD * LOCAL, 3, 16, 16)
    return (torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    # float64 so that the comparison is exact up to summation order.
    return convert_global_bn(build_model(MODEL), torch.device("cpu")).double()


def _step(net, model, v1, v2, variant):
    """One forward/backward of the loss; the loss value, every gradient, every BN running statistic."""
    model.zero_grad(set_to_none=True)
    _, z = net(torch.cat([v1, v2]))
    loss = contrastive_loss(*z.chunk(2), **variant)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    stats = {name: b.clone() for name, b in model.named_buffers() if "running" in name}
    return loss.detach(), grads, stats


def _init(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)


def _ddp_worker(rank: int, store: str, out: str) -> None:
    _init(rank, store)
    try:
        v1, v2 = _views()
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        results = []
        for variant in VARIANTS:
            model = _model()
            net = DistributedDataParallel(model)
            loss, grads, stats = _step(net, model, v1[rows], v2[rows], variant)
            dist.all_reduce(loss)
            results.append({"loss": loss / WORLD, "grads": grads, "stats": stats})
        if rank == 0:
            torch.save(results, out)
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


def test_model_uses_global_batchnorm_after_conversion():
    assert any(isinstance(m, GlobalBatchNorm) for m in _model().modules())


def test_two_gloo_ranks_match_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(str(tmp_path / "store"), str(out)), nprocs=WORLD, join=True)
    ddp = torch.load(out, weights_only=True)

    torch.set_num_threads(1)
    v1, v2 = _views()
    for variant, got in zip(VARIANTS, ddp):
        model = _model()
        loss, grads, stats = _step(model, model, v1, v2, variant)
        assert got["loss"].item() == pytest.approx(loss.item(), rel=1e-10), variant
        assert set(got["grads"]) == set(grads)
        for name, grad in grads.items():
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-8, atol=1e-10, msg=f"{variant} {name}")
        # global_bn: the running statistics are those of the global batch, as in one process.
        for name, value in stats.items():
            torch.testing.assert_close(got["stats"][name], value, rtol=1e-10, atol=1e-12, msg=f"{variant} {name}")


def _fit_worker(rank: int, store: str, out_dir: str) -> None:
    _init(rank, store)
    try:
        cfg = TrainConfig.from_dict(dict(dataset_size=32, batch_size=16, epochs=2, projection_dim=8,
                                         projection_hidden_dim=16, knn_k=5, augmentations="crop,flip"))
        calls = []
        summary = fit(cfg, on_epoch=lambda epoch, metrics, save: calls.append(epoch))
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"calls": calls, "status": summary["status"], "loss": summary["metrics"]["loss"],
                       "epochs_run": summary["epochs_run"]}, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_fit_under_ddp_reports_on_rank_zero_only_and_ranks_agree(tmp_path):
    mp.spawn(_fit_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["calls"] == [1, 2] and r1["calls"] == []
    assert r0["status"] == r1["status"] == "completed" and r0["epochs_run"] == r1["epochs_run"] == 2
    assert r0["loss"] == r1["loss"]  # the logged loss is the global mean


def _weights_worker(rank: int, store: str, out_dir: str) -> None:
    """fit with global_bn on and off; saves this rank's final model (captured as fit builds it)."""
    import trainers.training.loop

    _init(rank, store)
    try:
        built = []
        real = trainers.training.loop.build_model
        trainers.training.loop.build_model = lambda cfg: built.append(real(cfg)) or built[-1]
        results = {}
        for global_bn in (True, False):
            cfg = TrainConfig.from_dict(dict(dataset_size=32, batch_size=16, epochs=1, projection_dim=8,
                                             projection_hidden_dim=16, knn_k=5, augmentations="crop,flip",
                                             global_bn=global_bn, optimizer="sgd", lr=0.1))
            fit(cfg)
            model = built[-1]
            results[global_bn] = {"state": model.state_dict(),
                                  "global_bn_layers": sum(isinstance(m, GlobalBatchNorm) for m in model.modules())}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_fit_wraps_the_model_in_ddp_and_makes_batchnorm_global(tmp_path):
    mp.spawn(_weights_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    for global_bn in (True, False):
        a, b = r0[global_bn]["state"], r1[global_bn]["state"]
        weights = [name for name in a if "running" not in name and "num_batches" not in name]
        stats = [name for name in a if "running" in name]
        assert weights and stats
        # Each rank trained on its own half of every batch (other images, other augmentations):
        # the weights agree only because DDP averaged the gradients.
        for name in weights:
            assert torch.equal(a[name], b[name]), (global_bn, name)
        # BN statistics of the last step are each rank's own unless BN is global.
        same_stats = [torch.equal(a[name], b[name]) for name in stats]
        assert all(same_stats) if global_bn else not any(same_stats), global_bn
    assert r0[True]["global_bn_layers"] > 0 and r0[False]["global_bn_layers"] == 0


def _uneven_worker(rank: int, store: str, out_dir: str) -> None:
    _init(rank, store)
    try:
        fit(TrainConfig.from_dict(dict(dataset_size=32, batch_size=15, epochs=1)))
    except ValueError as err:
        with open(f"{out_dir}/rank{rank}.txt", "w") as f:
            f.write(str(err))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_global_batch_not_divisible_by_the_ranks_is_refused(tmp_path):
    mp.spawn(_uneven_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    assert (tmp_path / "rank0.txt").read_text() == "batch_size: must be divisible by the 2 processes (got 15)"
