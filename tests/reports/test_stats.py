"""The report's statistics against scipy and against hand-worked values."""
import math

import numpy as np
import pytest

from reports.stats import (compare_means, groups_p_value, holm, mean_ci, pareto_front, permutation_p_value,
                           spans_decades, t_critical)

scipy_stats = pytest.importorskip("scipy.stats")


def test_t_critical_matches_scipy_for_every_df():
    for df in range(1, 300):
        assert t_critical(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-3)


def test_mean_ci_is_students_t_interval():
    values = [0.61, 0.64, 0.66, 0.60]
    ci = mean_ci(values)
    lo, hi = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (ci.n, ci.mean, ci.std) == (4, pytest.approx(0.6275), pytest.approx(np.std(values, ddof=1)))
    assert (ci.lo, ci.hi) == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))


def test_mean_ci_of_one_value_has_no_interval():
    ci = mean_ci([0.7, float("nan")])
    assert ci.n == 1 and ci.mean == 0.7 and math.isnan(ci.std) and math.isnan(ci.lo)


def test_holm_adjusts_in_step_down_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_permutation_test_separates_real_from_null_differences():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 30)
    assert permutation_p_value(a, b, np.random.default_rng(0)) < 0.01
    same = rng.normal(0.0, 1.0, 30)
    p_null = permutation_p_value(same, rng.normal(0.0, 1.0, 30), np.random.default_rng(0))
    assert p_null > 0.05
    assert permutation_p_value(a, a + 10, np.random.default_rng(0), resamples=99) == pytest.approx(1 / 100)


def test_permutation_p_value_agrees_with_welch_t_on_normal_data():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.3, 1.0, 40), rng.normal(0.0, 1.0, 40)
    welch = scipy_stats.ttest_ind(a, b, equal_var=False).pvalue
    assert permutation_p_value(a, b, np.random.default_rng(0), resamples=4000) == pytest.approx(welch, abs=0.03)


def test_bootstrap_interval_covers_the_difference():
    rng = np.random.default_rng(3)
    diff = compare_means(rng.normal(0.8, 0.05, 20), rng.normal(0.6, 0.05, 20), np.random.default_rng(0))
    assert diff.lo < diff.diff < diff.hi
    assert 0.15 < diff.lo and diff.hi < 0.25


def test_groups_test_finds_one_shifted_group():
    rng = np.random.default_rng(4)
    groups = [rng.normal(0, 1, 15), rng.normal(0, 1, 15), rng.normal(2, 1, 15)]
    assert groups_p_value(groups, np.random.default_rng(0)) < 0.01
    null = [rng.normal(0, 1, 15) for _ in range(3)]
    assert groups_p_value(null, np.random.default_rng(0)) > 0.05


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    score = np.array([0.5, 0.7, 0.6, 0.9, 0.7])
    assert pareto_front(cost, score, maximize=True).tolist() == [True, True, False, True, False]
    assert pareto_front(cost, -score, maximize=False).tolist() == [True, True, False, True, False]


def test_spans_decades_needs_positive_values_a_ratio_apart():
    assert spans_decades([0.05, 0.2, 1.0]) and not spans_decades([128, 1024])
    assert spans_decades([128, 1024], ratio=8) and not spans_decades([0.0, 5.0]) and not spans_decades([])
