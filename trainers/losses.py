"""Contrastive objectives of the SimCLR paper: NT-Xent (public), NT-Logistic and margin triplet.

Every objective sees the same picture: the 2N stacked projections ``[z1; z2]`` (row ``i`` and row
``N + i`` are the two views of image ``i``), a similarity between every pair of rows, each row's
self-similarity removed, and the row's other view as its positive. Under DDP the keys (the
columns) are the embeddings of every rank, gathered with gradients, while the queries (the rows)
are this rank's own, so that the gradient equals that of one process holding the global batch.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.training import distributed

MAHALANOBIS_RIDGE = 1e-3

SimilarityFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def _cosine(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    # Cosine is of z itself: normalising is part of the definition, whatever hidden_norm says.
    return F.normalize(q, dim=1) @ F.normalize(k, dim=1).T


def _dot(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    return q_u @ k_u.T


def _euclidean(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    # Expanded square rather than cdist: cdist's gradient is NaN at zero distance (the diagonal).
    sq = (q_u * q_u).sum(1, keepdim=True) + (k_u * k_u).sum(1)[None, :] - 2.0 * (q_u @ k_u.T)
    return -sq


def _mahalanobis(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    with torch.no_grad():
        centred = k_u - k_u.mean(0, keepdim=True)
        cov = centred.T @ centred / k_u.shape[0]
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        precision = torch.linalg.inv(cov + MAHALANOBIS_RIDGE * eye)
    qp = q_u @ precision
    sq = (qp * q_u).sum(1, keepdim=True) + ((k_u @ precision) * k_u).sum(1)[None, :] - 2.0 * (qp @ k_u.T)
    return -sq


def _squared_distances(q_u: Tensor, k_u: Tensor, precision: Tensor | None = None) -> Tensor:
    """(q_a - k_b)^T P (q_a - k_b) for every pair, P the identity when ``precision`` is None."""
    qp = q_u if precision is None else q_u @ precision
    kp = k_u if precision is None else k_u @ precision
    return (qp * q_u).sum(1, keepdim=True) + (kp * k_u).sum(1)[None, :] - 2.0 * (qp @ k_u.T)


def _batch_precision(rows: Tensor) -> Tensor:
    # The fork's tfp.stats.covariance: biased, mean-centred; inverted with gradients, no ridge.
    centred = rows - rows.mean(0, keepdim=True)
    return torch.linalg.inv(centred.T @ centred / rows.shape[0])


def _euclidean_inverse(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    return 1.0 / (1.0 + _squared_distances(q_u, k_u))


def _mahalanobis_inverse(q: Tensor, k: Tensor, q_u: Tensor, k_u: Tensor) -> Tensor:
    # Rows and columns are [first views; second views]: a block of one view against itself is
    # whitened by that view's covariance, a cross block by that of both views together.
    n, total = q_u.shape[0] // 2, k_u.shape[0] // 2
    q1, q2, k1, k2 = q_u[:n], q_u[n:], k_u[:total], k_u[total:]
    both = _batch_precision(k_u)
    sq = torch.cat([
        torch.cat([_squared_distances(q1, k1, _batch_precision(k1)), _squared_distances(q1, k2, both)], 1),
        torch.cat([_squared_distances(q2, k1, both), _squared_distances(q2, k2, _batch_precision(k2))], 1),
    ])
    return 1.0 / (1.0 + sq)


SIMILARITIES: dict[str, SimilarityFn] = {
    "cosine": _cosine,
    "dot": _dot,
    "euclidean": _euclidean,
    "mahalanobis": _mahalanobis,
    # The ablation fork's forms (jaeeun-n/simclr-ablations, objective_util.py): 1 / (1 + d^2).
    "euclidean_inverse": _euclidean_inverse,
    "mahalanobis_inverse": _mahalanobis_inverse,
}

# What a run trains on: the contrastive loss of two views, or the labels (the paper's supervised
# baseline of Table 1; the training loop holds its cross-entropy).
OBJECTIVES = ("simclr", "supervised")

# How the per-row losses become the scalar: the mean over the 2N rows (the paper, lightly), or
# google-research's sum of the two views' means (twice the mean; what its LARS recipe was tuned on).
REDUCTIONS: dict[str, float] = {"mean": 1.0, "sum_of_views": 2.0}


def pairwise_similarity(
    z1: Tensor, z2: Tensor, *, similarity: str, hidden_norm: bool, gather: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity of this rank's 2n rows with all 2N rows; also each row's self and positive column.

    Column layout (global): first view of every rank in rank order, then second view likewise.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity: must be one of {', '.join(SIMILARITIES)} (got {similarity!r})")
    # The loss is computed in float32 whatever the autocast precision of the network.
    if z1.dtype in (torch.float16, torch.bfloat16):
        z1, z2 = z1.float(), z2.float()
    n = z1.shape[0]
    rank, world = distributed.rank_and_world() if gather else (0, 1)
    k1 = distributed.gather_with_grad(z1) if world > 1 else z1
    k2 = distributed.gather_with_grad(z2) if world > 1 else z2
    queries = torch.cat([z1, z2])
    keys = torch.cat([k1, k2])
    total = k1.shape[0]
    if hidden_norm:
        q_u, k_u = F.normalize(queries, dim=1), F.normalize(keys, dim=1)
    else:
        q_u, k_u = queries, keys
    sim = SIMILARITIES[similarity](queries, keys, q_u, k_u)
    local = torch.arange(n, device=z1.device) + rank * n
    self_idx = torch.cat([local, local + total])
    pos_idx = torch.cat([local + total, local])
    return sim, self_idx, pos_idx


def _nt_xent_from_sim(sim: Tensor, self_idx: Tensor, pos_idx: Tensor, *, temperature: float,
                      margin: float, semi_hard: bool) -> Tensor:
    logits = sim / temperature
    rows = torch.arange(sim.shape[0], device=sim.device)
    logits = logits.masked_fill(_one_hot(self_idx, sim.shape[1]), float("-inf"))
    return -(logits[rows, pos_idx] - torch.logsumexp(logits, dim=1)).mean()


def _semi_hard_negative(sim: Tensor, negatives: Tensor, s_pos: Tensor) -> Tensor:
    """Per row, the similarity of its semi-hard negative (FaceNet / tf-addons mining).

    A row's semi-hard negatives are those less similar to it than its positive (``s- < s+``); the
    one taken is the most similar of them (the hardest that is still easier than the positive). A
    row with none takes its least similar negative instead. ``s_pos`` is (rows, 1).
    """
    below = negatives & (sim < s_pos)
    hardest_below = sim.masked_fill(~below, float("-inf")).max(1).values
    easiest = sim.masked_fill(~negatives, float("inf")).min(1).values
    return torch.where(below.any(1), hardest_below, easiest)


def _nt_logistic_from_sim(sim: Tensor, self_idx: Tensor, pos_idx: Tensor, *, temperature: float,
                          margin: float, semi_hard: bool) -> Tensor:
    # One positive against 2N-2 negatives: the two terms get equal weight (the paper re-weights).
    logits = sim / temperature
    rows = torch.arange(sim.shape[0], device=sim.device)
    negatives = ~(_one_hot(self_idx, sim.shape[1]) | _one_hot(pos_idx, sim.shape[1]))
    positive_term = -F.logsigmoid(logits[rows, pos_idx])
    if semi_hard:
        chosen = _semi_hard_negative(sim, negatives, sim[rows, pos_idx][:, None])
        negative_term = -F.logsigmoid(-chosen / temperature)
    else:
        negative_term = -(F.logsigmoid(-logits) * negatives).sum(1) / negatives.sum(1)
    return (positive_term + negative_term).mean()


def _margin_triplet_from_sim(sim: Tensor, self_idx: Tensor, pos_idx: Tensor, *, temperature: float,
                             margin: float, semi_hard: bool) -> Tensor:
    rows = torch.arange(sim.shape[0], device=sim.device)
    negatives = ~(_one_hot(self_idx, sim.shape[1]) | _one_hot(pos_idx, sim.shape[1]))
    s_pos = sim[rows, pos_idx][:, None]
    if not semi_hard:
        hinge = F.relu(sim - s_pos + margin) * negatives
        return (hinge.sum(1) / negatives.sum(1)).mean()
    return F.relu(_semi_hard_negative(sim, negatives, s_pos) - s_pos[:, 0] + margin).mean()


def _one_hot(idx: Tensor, columns: int) -> Tensor:
    return F.one_hot(idx, columns).bool()


LossFromSim = Callable[..., Tensor]

LOSSES: dict[str, LossFromSim] = {
    "nt_xent": _nt_xent_from_sim,
    "nt_logistic": _nt_logistic_from_sim,
    "margin_triplet": _margin_triplet_from_sim,
}


def contrastive_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    loss: str = "nt_xent",
    temperature: float = 0.5,
    similarity: str = "cosine",
    hidden_norm: bool = True,
    margin: float = 1.0,
    semi_hard: bool = False,
    gather: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """The objective named ``loss`` of the views ``z1``, ``z2`` (N x D each); a scalar.

    ``temperature`` is nt_xent's and nt_logistic's (margin_triplet ignores it), ``margin`` is
    margin_triplet's, ``semi_hard`` nt_logistic's and margin_triplet's (nt_xent ignores both); with
    ``gather`` and an initialised process group, negatives span every rank's rows. ``reduction``
    is one of ``REDUCTIONS``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: must be one of {', '.join(LOSSES)} (got {loss!r})")
    if reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction: must be one of {', '.join(REDUCTIONS)} (got {reduction!r})")
    sim, self_idx, pos_idx = pairwise_similarity(
        z1, z2, similarity=similarity, hidden_norm=hidden_norm, gather=gather)
    per_row_mean = LOSSES[loss](sim, self_idx, pos_idx, temperature=temperature, margin=margin,
                                semi_hard=semi_hard)
    return per_row_mean * REDUCTIONS[reduction]


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float,
    similarity: str = "cosine",
    hidden_norm: bool = True,
    gather: bool = True,
) -> Tensor:
    """The paper's NT-Xent: mean cross-entropy over the 2N rows of similarity / temperature.

    ``z1[i]`` and ``z2[i]`` are the two views of image ``i``. ``u = z / ||z||`` row-wise when
    ``hidden_norm`` else ``z``; similarities: ``cosine`` (of z), ``dot`` (u.u), ``euclidean``
    (-||u_a - u_b||^2), ``mahalanobis`` (-(u_a-u_b)^T (S + 1e-3 I)^-1 (u_a-u_b), S the biased
    covariance of the 2N rows of u, held constant); the ablation fork's ``euclidean_inverse``
    (1 / (1 + ||u_a - u_b||^2)) and ``mahalanobis_inverse`` (1 / (1 + (u_a-u_b)^T S^-1 (u_a-u_b)),
    S the biased covariance of the rows of u of a's view when a and b are of one view, of both views
    when not, recomputed each call with gradients through it and no ridge: needs more rows per view
    than D). Under DDP (``gather``) negatives, and the covariances, span all ranks.
    """
    return contrastive_loss(z1, z2, loss="nt_xent", temperature=temperature, similarity=similarity,
                            hidden_norm=hidden_norm, gather=gather)


def nt_logistic(z1: Tensor, z2: Tensor, *, temperature: float, semi_hard: bool = False,
                similarity: str = "cosine", hidden_norm: bool = True, gather: bool = True) -> Tensor:
    """NT-Logistic: mean over rows of -log sig(s+/t) - mean over negatives of log sig(-s-/t).

    ``semi_hard`` (the paper's "NT-Logi. (sh)", Table 4): each row's negative term is
    -log sig(-s-/t) of one negative, chosen as margin_triplet chooses it: among the row's
    semi-hard negatives, those less similar to it than its positive (s- < s+; with no margin in
    this loss, the semi-hard set is bounded by the positive alone), the most similar one; a row
    with no such negative takes its least similar negative. Under DDP the choice is among the
    negatives of the global batch.
    """
    return contrastive_loss(z1, z2, loss="nt_logistic", temperature=temperature, semi_hard=semi_hard,
                            similarity=similarity, hidden_norm=hidden_norm, gather=gather)


def margin_triplet(z1: Tensor, z2: Tensor, *, margin: float, semi_hard: bool = False,
                   similarity: str = "cosine", hidden_norm: bool = True, gather: bool = True) -> Tensor:
    """Margin triplet: mean of max(s- - s+ + margin, 0) over negatives, or over one semi-hard one."""
    return contrastive_loss(z1, z2, loss="margin_triplet", margin=margin, semi_hard=semi_hard,
                            similarity=similarity, hidden_norm=hidden_norm, gather=gather)
