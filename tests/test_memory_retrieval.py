"""The paper's retrieval score checked against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from memory.retrieval import RetrievalWeights, minmax, recency, score, top_k

# Three candidates, 0 h, 10 h and 100 h since last access:
#   recency raw   1, 0.995**10 = 0.951110, 0.995**100 = 0.605770
#   min-max       1, (0.951110 - 0.605770) / (1 - 0.605770) = 0.875986, 0
REC_MID = 0.875986
HOURS = np.array([0.0, 10.0, 100.0])
IMPORTANCE = np.array([1.0, 5.0, 10.0])  # min-max: 0, 4/9, 1
RELEVANCE = np.array([0.0, 0.9, 1.0])  # already in [0, 1] with min 0 and max 1


def test_recency_is_decay_to_the_hours() -> None:
    np.testing.assert_allclose(recency(HOURS), [1.0, 0.951110, 0.605770], atol=1e-6)
    np.testing.assert_allclose(recency(np.array([2.0]), decay=0.5), [0.25])


def test_minmax_scales_to_unit_interval() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 6.0, 3.0])), [0, 0.5, 1, 0.25])
    np.testing.assert_allclose(minmax(recency(HOURS)), [1.0, REC_MID, 0.0], atol=1e-6)


def test_minmax_constant_array_is_half() -> None:
    np.testing.assert_array_equal(minmax(np.array([7.0, 7.0, 7.0])), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(minmax(np.array([3.0])), [0.5])
    assert minmax(np.array([])).shape == (0,)


def test_score_equal_weights_by_hand() -> None:
    total, rec, imp, rel = score(recency(HOURS), IMPORTANCE, RELEVANCE, RetrievalWeights())
    np.testing.assert_allclose(rec, [1.0, REC_MID, 0.0], atol=1e-6)
    np.testing.assert_allclose(imp, [0.0, 4 / 9, 1.0])
    np.testing.assert_allclose(rel, [0.0, 0.9, 1.0])
    # 1+0+0 = 1;  0.875986 + 0.444444 + 0.9 = 2.220430;  0+1+1 = 2
    np.testing.assert_allclose(total, [1.0, 2.220430, 2.0], atol=1e-6)
    assert top_k(total, 3).tolist() == [1, 2, 0]


def test_score_pure_relevance_and_pure_recency() -> None:
    total, *_ = score(recency(HOURS), IMPORTANCE, RELEVANCE, RetrievalWeights(0, 0, 1))
    np.testing.assert_allclose(total, [0.0, 0.9, 1.0])
    assert top_k(total, 3).tolist() == [2, 1, 0]
    total, *_ = score(recency(HOURS), IMPORTANCE, RELEVANCE, RetrievalWeights(1, 0, 0))
    assert top_k(total, 3).tolist() == [0, 1, 2]


def test_released_code_weights_by_hand() -> None:
    w = RetrievalWeights.released_code()
    assert (w.recency, w.importance, w.relevance) == (0.5, 3.0, 2.0)
    total, *_ = score(recency(HOURS), IMPORTANCE, RELEVANCE, w)
    # 0.5*1 = 0.5;  0.5*0.875986 + 3*4/9 + 2*0.9 = 3.571326;  0 + 3 + 2 = 5
    np.testing.assert_allclose(total, [0.5, 3.571326, 5.0], atol=1e-6)
    assert top_k(total, 3).tolist() == [2, 1, 0]


def test_score_constant_component_contributes_half() -> None:
    total, rec, imp, rel = score(np.ones(3), np.full(3, 4.0), np.array([0.1, 0.3, 0.2]))
    np.testing.assert_array_equal(rec, [0.5] * 3)
    np.testing.assert_array_equal(imp, [0.5] * 3)
    np.testing.assert_allclose(total, [1.0, 2.0, 1.5])


def test_score_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        score(np.ones(3), np.ones(2), np.ones(3))


def test_top_k_ties_go_to_lower_index() -> None:
    t = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert top_k(t, 2).tolist() == [1, 2]
    assert top_k(t, 4).tolist() == [1, 2, 4, 3]
    assert top_k(t, 10).tolist() == [1, 2, 4, 3, 0]
    assert top_k(t, 0).tolist() == []
    assert top_k(np.array([]), 3).tolist() == []


def test_top_k_matches_stable_sort_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        t = rng.integers(0, 4, size=n).astype(float)  # lots of ties
        k = int(rng.integers(1, n + 3))
        ref = sorted(range(n), key=lambda i: (-t[i], i))[:k]
        assert top_k(t, k).tolist() == ref
