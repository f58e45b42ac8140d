"""Semi-hard NT-Logistic under DDP: 2 gloo ranks, each with its own rows, mine their negatives among
the global batch, so that the mean of the ranks' losses and their summed gradients equal one process
holding the global batch. Likewise the fork's similarities, whose covariances span the global batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainers.losses import contrastive_loss

WORLD = 2
LOCAL = 4  # rows per rank and view
D = 6
VARIANTS = [
    dict(loss="nt_logistic", semi_hard=True, similarity="cosine", temperature=0.5),
    dict(loss="nt_logistic", semi_hard=True, similarity="dot", temperature=3.0, hidden_norm=False),
    dict(loss="nt_xent", similarity="euclidean_inverse", temperature=0.5, reduction="sum_of_views"),
    dict(loss="nt_xent", similarity="mahalanobis_inverse", temperature=0.5),
]


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return (torch.randn(WORLD * LOCAL, D, generator=g, dtype=torch.float64),
            torch.randn(WORLD * LOCAL, D, generator=g, dtype=torch.float64))


def _loss_and_grads(z1: torch.Tensor, z2: torch.Tensor, variant: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = contrastive_loss(a, b, **variant)
    loss.backward()
    return loss.detach(), a.grad, b.grad


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        z1, z2 = _views()
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        results = []
        for variant in VARIANTS:
            loss, g1, g2 = _loss_and_grads(z1[rows], z2[rows], variant)
            dist.all_reduce(loss)
            # DDP averages the parameters' gradients over ranks: the rows' share is grad / WORLD.
            parts1 = [torch.empty_like(g1) for _ in range(WORLD)]
            parts2 = [torch.empty_like(g2) for _ in range(WORLD)]
            dist.all_gather(parts1, g1)
            dist.all_gather(parts2, g2)
            results.append((loss / WORLD, torch.cat(parts1) / WORLD, torch.cat(parts2) / WORLD))
        if rank == 0:
            torch.save(results, out)
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


def test_semi_hard_nt_logistic_on_two_ranks_equals_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "losses.pt"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(out)), nprocs=WORLD, join=True)
    ddp = torch.load(out, weights_only=True)
    z1, z2 = _views()
    for variant, (loss, g1, g2) in zip(VARIANTS, ddp):
        ref_loss, ref_g1, ref_g2 = _loss_and_grads(z1, z2, variant)
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-12), variant
        torch.testing.assert_close(g1, ref_g1, rtol=1e-10, atol=1e-12, msg=str(variant))
        torch.testing.assert_close(g2, ref_g2, rtol=1e-10, atol=1e-12, msg=str(variant))
    # Mining within each rank's own rows would choose differently: the global batch matters here.
    local = [contrastive_loss(z1[r * LOCAL:(r + 1) * LOCAL], z2[r * LOCAL:(r + 1) * LOCAL], **VARIANTS[0])
             for r in range(WORLD)]
    assert abs(sum(local).item() / WORLD - ddp[0][0].item()) > 1e-3
