"""The fine-tuning section: the best trial's fine-tuned scores beside training from scratch and the baselines."""
import pandas as pd

from reports.page import render_page
from reports.sections.finetune import finetune_section
from reports.study_data import StudyData


def _data(finetune=None, baselines=None):
    trials = pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed"] * 2, "best.knn_top1": [0.41, 0.52],
                           "best.linear_top1": [0.5, 0.6], "score": [0.41, 0.52]})
    data = StudyData("study", {"name": "s", "metric": {"name": "knn_top1", "goal": "maximize"}}, trials, pd.DataFrame())
    data.finetune, data.baselines = finetune, baselines  # what load_study reads from the tables
    return data


FINETUNE = pd.DataFrame({
    "encoder": ["trial", "random_init", "trial", "random_init", "trial"],
    "trial_id": ["b", None, "b", None, "b"],
    "protocol": ["finetune", "finetune", "finetune", "finetune", "segmentation"],
    "labels": [0.1, 0.1, 1.0, 1.0, 1.0],
    "metric": ["finetune_top1"] * 4 + ["mean_iou"],
    "value": [0.7, 0.4, 0.9, 0.85, 0.6],
    "epochs": [30] * 5, "train_images": [100, 100, 1000, 1000, 8], "test_images": [500] * 4 + [2],
})
BASELINES = pd.DataFrame({"baseline": ["random_init", "pca"], "knn_top1": [0.3, 0.35], "linear_top1": [0.33, 0.2],
                          "linear_r2": [None, None]})


def test_no_finetune_no_section():
    assert finetune_section(_data()) is None
    assert finetune_section(_data(FINETUNE.iloc[:0])) is None


def test_the_finding_compares_each_fraction_with_training_from_scratch():
    section = finetune_section(_data(FINETUNE, BASELINES))
    assert section.finding == ("Fine-tuned, the best trial's encoder reaches top-1 with 10% of the labels 0.700 "
                               "(+0.300 against training from scratch, 0.400); top-1 with 100% of the labels 0.900 "
                               "(+0.050 against training from scratch, 0.850); mean IoU in segmentation 0.600.")
    page = render_page("s", "", [section], [])
    for text in ("kNN on frozen h (all labels)", "linear probe on frozen h (all labels)",
                 "fine-tuned, 10% of the labels (100 images)", "segmentation, mean IoU (8 images)",
                 "random-init encoder", "PCA of the pixels", "0.520", "0.350", "trial b"):
        assert text in page, text


def test_without_baselines_the_section_shows_the_trial_alone():
    section = finetune_section(_data(FINETUNE[FINETUNE["encoder"] == "trial"]))
    page = render_page("s", "", [section], [])
    assert "<th>random-init encoder</th>" not in page and "<th>best trial</th>" in page and "0.700" in page
    assert section.finding.endswith("mean IoU in segmentation 0.600.")
