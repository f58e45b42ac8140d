"""The baselines and embeddings sections: what they say, computed from the numbers they are given."""
import numpy as np
import pandas as pd
import pytest

from reports.page import render_page
from reports.sections.baselines import baselines_section, embeddings_section, knn_agreement
from reports.study_data import StudyData


def _data(baselines=None, embeddings=None, best=(0.41, 0.52, 0.47)):
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "status": ["completed"] * 3 + ["failed"],
                           "best.knn_top1": [*best, 0.99], "score": [*best, 0.99]})
    data = StudyData("study", {"name": "s", "metric": {"name": "knn_top1", "goal": "maximize"}}, trials,
                     pd.DataFrame())
    data.baselines, data.embeddings = baselines, embeddings  # what load_study reads from the tables
    return data


BASELINES = pd.DataFrame({"baseline": ["random_init", "pca"], "knn_top1": [0.33, 0.55],
                          "linear_top1": [0.48, 0.14], "linear_r2": [np.nan, np.nan]})


def test_no_baselines_no_section():
    assert baselines_section(_data()) is None
    assert embeddings_section(_data()) is None


def test_the_finding_compares_the_best_unfailed_trial_with_each_baseline():
    section = baselines_section(_data(BASELINES))
    assert section.finding == ("The best trial's knn_top1 is 0.520: +0.190 against the random-init encoder "
                               "(0.330); -0.030 against the PCA of the pixels (0.550); it does not beat every "
                               "baseline: the training has not yet learned more than the baseline gives.")
    beaten = baselines_section(_data(BASELINES.assign(knn_top1=[0.33, 0.36])))
    assert beaten.finding.endswith("it beats every baseline.")
    page = render_page("s", "", [section], [])
    assert "linear_top1" in page and "0.480" in page  # the trials had no linear_top1: shown for the baselines


def _brute_force_vote(x: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Leave-one-out share of points whose k nearest (cosine) neighbours vote for their own label."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    right = 0
    for i in range(len(x)):
        sims = [(unit[i] @ unit[j], j) for j in range(len(x)) if j != i]
        nearest = [j for _, j in sorted(sims, reverse=True)[:k]]
        counts = np.bincount(labels[nearest], minlength=labels.max() + 1)
        right += int(np.argmax(counts) == labels[i])  # argmax: ties to the smallest label
    return right / len(x)


def test_knn_agreement_against_a_brute_force_vote():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    x = rng.normal(size=(60, 8)) + np.eye(8)[labels] * 2.0
    assert knn_agreement(x, labels, k=10) == pytest.approx(_brute_force_vote(x, labels, 10))


def test_embeddings_finding_says_which_space_separates_the_classes():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 20)
    h = np.eye(5)[labels] * 5 + rng.normal(size=(100, 5))  # well separated
    z = rng.normal(size=(100, 5))  # no class structure
    arrays = {"h": h, "z": z, "labels": labels, "tsne_h": h[:, :2], "tsne_z": z[:, :2], "trial_id": "t1"}
    section = embeddings_section(_data(embeddings=arrays))
    in_h, in_z = _brute_force_vote(h, labels, 10), _brute_force_vote(z, labels, 10)  # 10 = half of 20 per class
    assert section.finding == (
        f"A 10-nearest-neighbour vote (cosine, leave-one-out) recovers the class of {in_h:.0%} of these images "
        f"in h and {in_z:.0%} in g(h): h separates the classes better than g(h), as the SimCLR paper found "
        "(its section 4.2).")
    html = render_page("s", "", [section], [])
    assert "class 4" in html and "trial t1" in html
    named = embeddings_section(_data(embeddings={**arrays, "target_names": np.array(list("abcde"))}))
    assert '"name":"e"' in render_page("s", "", [named], []).replace(" ", "")
    swapped = embeddings_section(_data(embeddings={**arrays, "h": z, "z": h}))
    assert "unlike what the SimCLR paper found" in swapped.finding
    same = embeddings_section(_data(embeddings={**arrays, "z": h + 1e-3 * rng.normal(size=h.shape)}))
    assert "within sampling noise" in same.finding and "neither space" in same.finding


def test_regression_embeddings_are_coloured_by_a_target():
    rng = np.random.default_rng(2)
    targets = rng.uniform(size=(50, 4))
    arrays = {"h": rng.normal(size=(50, 3)), "z": rng.normal(size=(50, 3)), "labels": targets,
              "tsne_h": rng.normal(size=(50, 2)), "tsne_z": rng.normal(size=(50, 2)),
              "target_names": np.array(["m", "b", "h", "sigma"])}
    section = embeddings_section(_data(embeddings=arrays))
    assert section.finding.startswith("Each map is coloured by the first generative factor")
    assert '"text":"m"' in render_page("s", "", [section], []).replace(" ", "")
