"""MemoryStream: storage, vectorised retrieval, touch semantics and checkpoints."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from memory.retrieval import RetrievalWeights
from memory.stream import MemoryRecord, MemoryStream

T0 = datetime(2023, 2, 13, 7, 0, 0)
NOW = T0 + timedelta(hours=100)
QUERY = np.array([1.0, 0.0], dtype=np.float32)
REC_MID = 0.875986  # min-max of 0.995**10 between 0.995**100 and 1 (see retrieval tests)


def _three() -> MemoryStream:
    """100 h old / imp 10 / relevance 1;  10 h / 5 / 0.9;  0 h / 1 / 0."""
    s = MemoryStream("Isabella", dim=2)
    s.add("the party is on Valentine's day", "observation", T0, 10, [1.0, 0.0])
    s.add("Klaus is reading", "observation", NOW - timedelta(hours=10), 5,
          [0.9, np.sqrt(0.19)])
    s.add("the stove is on", "observation", NOW, 1, [0.0, 1.0])
    return s


def test_retrieve_scores_by_hand_and_orders_best_first() -> None:
    s = _three()
    got = s.retrieve(QUERY, NOW, k=3, touch=False)
    assert [g.record.id for g in got] == [2, 1, 3]
    by_id = {g.record.id: g for g in got}
    assert by_id[1].recency == pytest.approx(0.0)
    assert by_id[2].recency == pytest.approx(REC_MID, abs=1e-6)
    assert by_id[3].recency == pytest.approx(1.0)
    assert by_id[2].importance == pytest.approx(4 / 9)
    assert by_id[2].relevance == pytest.approx(0.9, abs=1e-6)
    assert [g.score for g in got] == pytest.approx([2.220430, 2.0, 1.0], abs=1e-6)


def test_retrieve_weights() -> None:
    s = _three()
    pure_rel = s.retrieve(QUERY, NOW, k=3, weights=RetrievalWeights(0, 0, 1), touch=False)
    assert [g.record.id for g in pure_rel] == [1, 2, 3]
    released = s.retrieve(QUERY, NOW, k=3, weights=RetrievalWeights.released_code(),
                          touch=False)
    assert [g.record.id for g in released] == [1, 2, 3]
    assert [g.score for g in released] == pytest.approx([5.0, 3.571326, 0.5], abs=1e-6)


def test_touch_updates_last_access_and_changes_next_recency() -> None:
    s = _three()
    first = s.retrieve(QUERY, NOW, k=1)  # touches record 2 only
    assert first[0].record.id == 2
    assert s.get(2).last_accessed == NOW
    assert s.get(1).last_accessed == T0
    second = s.retrieve(QUERY, NOW, k=3, touch=False)
    by_id = {g.record.id: g for g in second}
    # raw recency now 0.605770, 1, 1 -> normalised 0, 1, 1
    assert by_id[2].recency == pytest.approx(1.0)
    assert by_id[2].score == pytest.approx(1.0 + 4 / 9 + 0.9, abs=1e-6)
    # touch=False leaves access times alone
    s.retrieve(QUERY, NOW + timedelta(hours=5), k=3, touch=False)
    assert s.get(1).last_accessed == T0


def test_single_record_scores_half_each() -> None:
    s = MemoryStream("a", dim=2)
    s.add("x", "observation", T0, 3, [1.0, 0.0])
    (only,) = s.retrieve(QUERY, NOW)
    assert (only.recency, only.importance, only.relevance, only.score) == (0.5, 0.5, 0.5, 1.5)


def test_empty_stream_and_k_zero() -> None:
    s = MemoryStream("a", dim=2)
    assert s.retrieve(QUERY, NOW) == []
    s.add("x", "observation", T0, 3, [1.0, 0.0])
    assert s.retrieve(QUERY, NOW, k=0) == []


def test_matrix_grows_by_doubling_and_keeps_data() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(37, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    s = MemoryStream("a", dim=8, capacity=4)
    for i, v in enumerate(vecs):
        s.add(f"m{i}", "observation", T0 + timedelta(minutes=i), 1 + i % 10, v, step=i)
    assert len(s) == 37 and s.capacity == 64
    np.testing.assert_array_equal(s.embeddings, vecs)
    assert [r.description for r in s] == [f"m{i}" for i in range(37)]
    assert s.get(20).index == 19 and s.get(20).step == 19
    best = s.retrieve(vecs[30], T0 + timedelta(minutes=36), k=1,
                      weights=RetrievalWeights(0, 0, 1))
    assert best[0].record.description == "m30"


def test_embeddings_view_is_read_only() -> None:
    s = _three()
    with pytest.raises(ValueError):
        s.embeddings[0, 0] = 5.0


def test_add_normalises_rows() -> None:
    s = MemoryStream("a", dim=2)
    s.add("x", "observation", T0, 3, [3.0, 4.0])
    np.testing.assert_allclose(s.embeddings[0], [0.6, 0.8], atol=1e-7)


def test_wrong_dim_is_rejected_naming_both_dims() -> None:
    s = MemoryStream("a", dim=384)
    with pytest.raises(ValueError, match=r"dim 64.*dim 384"):
        s.add("x", "observation", T0, 3, np.ones(64))
    s.add("x", "observation", T0, 3, np.ones(384))
    with pytest.raises(ValueError, match="384"):
        s.retrieve(np.ones(64), NOW)
    assert len(s) == 1


def test_kind_validation_and_importance_clamp() -> None:
    s = MemoryStream("a", dim=2)
    with pytest.raises(ValueError, match="kind"):
        s.add("x", "dream", T0, 3, [1.0, 0.0])
    assert len(s) == 0
    assert s.add("x", "observation", T0, 0, [1.0, 0.0]).importance == 1
    assert s.add("x", "observation", T0, 11, [1.0, 0.0]).importance == 10
    assert s.add("x", "observation", T0, 7.9, [1.0, 0.0]).importance == 7  # type: ignore[arg-type]


def test_kinds_filter() -> None:
    s = MemoryStream("a", dim=2)
    s.add("saw Maria", "observation", T0, 2, [1.0, 0.0])
    s.add("Maria likes Klaus", "reflection", T0, 8, [1.0, 0.0], evidence=(1,))
    s.add("go to the cafe at 8", "plan", T0, 4, [0.0, 1.0])
    got = s.retrieve(QUERY, NOW, k=10, kinds=["reflection", "plan"])
    assert sorted(g.record.kind for g in got) == ["plan", "reflection"]
    assert [g.record.id for g in s.retrieve(QUERY, NOW, kinds="plan")] == [3]
    assert s.retrieve(QUERY, NOW, kinds=["chat"]) == []
    assert s.get(2).evidence == (1,)
    with pytest.raises(ValueError, match="kind"):
        s.retrieve(QUERY, NOW, kinds=["dream"])


def test_recent_is_newest_last() -> None:
    s = MemoryStream("a", dim=2)
    for i in range(6):
        kind = "plan" if i % 2 else "observation"
        s.add(f"m{i}", kind, T0 + timedelta(minutes=i), 3, [1.0, 0.0])
    assert [r.description for r in s.recent(3)] == ["m3", "m4", "m5"]
    assert [r.description for r in s.recent(10, kinds=["plan"])] == ["m1", "m3", "m5"]
    assert s.recent(0) == []


def test_retrieve_many_matches_single_queries() -> None:
    rng = np.random.default_rng(2)
    s = MemoryStream("a", dim=16)
    for i in range(50):
        s.add(f"m{i}", "observation", T0 + timedelta(hours=i), int(rng.integers(1, 11)),
              rng.normal(size=16))
    qs = rng.normal(size=(3, 16)).astype(np.float32)
    many = s.retrieve_many(qs, NOW, k=5, touch=False)
    for q, got in zip(qs, many):
        single = s.retrieve(q, NOW, k=5, touch=False)
        assert [g.record.id for g in got] == [g.record.id for g in single]
        assert [g.score for g in got] == pytest.approx([g.score for g in single])
    s.retrieve_many(qs, NOW, k=5)
    touched = {g.record.id for got in many for g in got}
    assert {r.id for r in s if r.last_accessed == NOW} == touched


def test_shared_id_counter_across_streams() -> None:
    counter = itertools.count(100)
    a = MemoryStream("a", dim=2, next_id=lambda: next(counter))
    b = MemoryStream("b", dim=2, next_id=lambda: next(counter))
    ids = [a.add("x", "observation", T0, 1, [1, 0]).id,
           b.add("y", "observation", T0, 1, [1, 0]).id,
           a.add("z", "observation", T0, 1, [1, 0]).id]
    assert ids == [100, 101, 102]
    assert 102 in a and 101 not in a
    assert MemoryStream("c", dim=2).add("w", "chat", T0, 1, [1, 0]).id == 1


def test_state_round_trip_is_exact() -> None:
    s = _three()
    s.add("Maria is kind", "reflection", NOW, 6, [0.3, 0.7], evidence=(1, 2), step=42)
    s.retrieve(QUERY, NOW + timedelta(hours=1), k=2)  # move some access times
    st = s.state()
    assert isinstance(st["embeddings"], bytes)
    json.dumps({k: v for k, v in st.items() if k != "embeddings"})

    r = MemoryStream.from_state(st)
    assert (r.agent, r.dim, len(r)) == (s.agent, s.dim, len(s))
    assert list(r) == list(s)
    np.testing.assert_array_equal(r.embeddings, s.embeddings)
    later = NOW + timedelta(hours=3)
    a = s.retrieve(QUERY, later, k=4, touch=False)
    b = r.retrieve(QUERY, later, k=4, touch=False)
    assert [(g.record.id, g.score) for g in a] == [(g.record.id, g.score) for g in b]
    assert r.add("next", "chat", later, 2, [1, 0]).id == s.add("next", "chat", later, 2, [1, 0]).id

    # also through JSON, with the matrix base64-encoded
    js = json.loads(json.dumps({**st, "embeddings": base64.b64encode(st["embeddings"]).decode()}))
    assert list(MemoryStream.from_state(js)) == list(MemoryStream.from_state(st))


def test_state_rejects_inconsistent_matrix() -> None:
    st = _three().state()
    st["embeddings"] = st["embeddings"][:-4]
    with pytest.raises(ValueError, match="floats"):
        MemoryStream.from_state(st)


def test_timezone_aware_times_work() -> None:
    s = MemoryStream("a", dim=2)
    t = datetime(2023, 2, 13, 7, tzinfo=timezone.utc)
    s.add("x", "observation", t, 3, [1, 0])
    s.add("y", "observation", t + timedelta(hours=1), 3, [1, 0])
    got = s.retrieve(QUERY, t + timedelta(hours=2), k=2, weights=RetrievalWeights(1, 0, 0))
    assert [g.record.description for g in got] == ["y", "x"]


def test_record_round_trips_through_dict() -> None:
    rec = MemoryRecord(7, "a", "whisper", "you are running for mayor", T0, NOW, 9, (1, 2), 3, 0)
    assert MemoryRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
