"""The vectorised computations of the detection rules give, to the last bit, what the plain
per-constituency computations they replace give."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from election_pipeline.detection import volume
from election_pipeline.detection.context import peer_groups
from election_pipeline.detection.rates import _hourly_series


def _spread_of_one_row(rel: np.ndarray, counting: np.ndarray, row: int) -> np.ndarray:
    """The shape spread of one row from the other rows, computed on its own."""
    others = np.ones(rel.shape[0], dtype=bool)
    others[row] = False
    rel, counting = rel[others], counting[others]
    out = np.zeros(rel.shape[1])
    if rel.shape[0] + 1 >= volume.ROBUST_SPREAD_MIN and rel.shape[1]:
        # many constituencies: the robust spread (squared MAD of the others, net of their
        # median counting variance)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            counting = np.where(np.isnan(rel), np.nan, counting)
            med = volume._nanmedian(rel)
            mad = volume._nanmedian(np.abs(rel - med))
            noise = volume._nanmedian(counting)
            out = np.nan_to_num(np.maximum((volume.MAD_TO_SD * mad) ** 2 - noise, 0.0))
        # shrunk toward its median over the runs, which weighs as much as
        # SPREAD_PRIOR_CONSTITUENCIES constituencies' errors
        median = float(np.median(out))
        measured = (~np.isnan(rel)).sum(axis=0)
        k = volume.SPREAD_PRIOR_CONSTITUENCIES
        return np.maximum((measured * out + k * median) / (measured + k), median)
    if rel.shape[0] >= 2 and rel.shape[1]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            counting = np.where(np.isnan(rel), np.nan, counting)
            med = volume._nanmedian(rel)
            mad = volume._nanmedian(np.abs(rel - med))
            scale = np.maximum(volume.MAD_TO_SD * mad, np.sqrt(volume._nanmedian(counting)))
            limit = volume.CLIP_SDS * scale
            clipped = np.clip(rel, med - limit, med + limit)
            var = np.nanvar(clipped, axis=0, ddof=1)
            noise = np.nanmean(np.minimum(counting, limit**2), axis=0)
            out = np.nan_to_num(np.maximum(var - noise, 0.0))
        out = np.maximum(out, float(np.median(out)))
    return out


def _matrices(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 30)), int(rng.integers(0, 20))
    rel = rng.standard_normal((n, m)) * 0.2
    if seed % 3 == 0:
        rel = np.round(rel, 1)  # ties
    if seed % 5 == 0:
        rel[rng.random((n, m)) < 0.05] *= 200  # another constituency's spike, to clip
    rel[rng.random((n, m)) < rng.random() * 0.6] = np.nan
    if m and seed % 7 == 0:
        rel[:, 0] = np.nan  # a run where nobody voted
    counting = rng.random((n, m)) * 0.3
    if seed % 4 == 0:
        counting = np.round(counting, 1)
    return rel, counting


@pytest.mark.parametrize("seed", range(60))
def test_leave_one_out_spread_equals_the_spread_of_each_row(seed):
    rel, counting = _matrices(seed)
    spreads = volume._leave_one_out_spread(rel, counting)
    for row in range(rel.shape[0]):
        assert np.array_equal(spreads[row], _spread_of_one_row(rel, counting, row))


@pytest.mark.parametrize("runs", [1, 2, 5])
def test_leave_one_out_spread_of_few_runs_and_many_constituencies(runs):
    """A single column is added pairwise by numpy, not row by row; the spread follows."""
    rng = np.random.default_rng(runs)
    rel = rng.standard_normal((60, runs)) * 10 ** rng.uniform(-3, 1, (60, runs))
    rel[rng.random(rel.shape) < 0.1] = np.nan
    counting = rng.random(rel.shape) * 0.3
    spreads = volume._leave_one_out_spread(rel, counting)
    for row in range(rel.shape[0]):
        assert np.array_equal(spreads[row], _spread_of_one_row(rel, counting, row))


@pytest.mark.parametrize("seed", range(20))
def test_leave_one_out_median_equals_the_median_without_the_row(seed):
    rel, _ = _matrices(seed)
    medians = volume._leave_one_out_nanmedian(rel)
    for row in range(rel.shape[0]):
        expected = volume._nanmedian(np.delete(rel, row, axis=0))
        assert np.array_equal(medians[row], expected, equal_nan=True)


def _series_one_by_one(frame: pd.DataFrame) -> list[tuple[str, np.ndarray, list[datetime]]]:
    out = []
    for cid in sorted(frame["constituency_id"].unique()):
        own = frame[frame["constituency_id"] == cid].groupby("hour")[["_k", "_n"]].sum()
        axis = pd.date_range(own.index.min(), own.index.max(), freq="h")
        own = own.reindex(axis, fill_value=0)
        out.append((cid, np.stack([own["_k"].to_numpy(), own["_n"].to_numpy()]), list(axis)))
    return out


def test_hourly_series_equal_a_groupby_per_constituency():
    rng = np.random.default_rng(3)
    start = datetime(2024, 9, 6, 5)
    rows = []
    for cid in ["b", "a", "c10", "c2"]:
        for _ in range(40):
            hour = start + timedelta(hours=int(rng.integers(0, 30)))  # gaps, and some hours twice
            rows.append((cid, hour, int(rng.integers(0, 5)), int(rng.integers(0, 50))))
    frame = pd.DataFrame(rows, columns=["constituency_id", "hour", "_k", "_n"]).sample(frac=1, random_state=1)
    got = list(_hourly_series(frame))
    want = _series_one_by_one(frame)
    assert [g[0] for g in got] == [w[0] for w in want]
    for (_, series, first), (_, expected, expected_axis) in zip(got, want, strict=True):
        assert series.dtype == np.int64
        assert np.array_equal(series, expected)
        assert [first + i * timedelta(hours=1) for i in range(series.shape[1])] == expected_axis


def _peer_groups_one_by_one(constituencies: pd.DataFrame, min_peers: int = 3) -> dict[str, list[str]]:
    known = constituencies[(constituencies["registered"] > 0) & constituencies["election_id"].notna()]
    out: dict[str, list[str]] = {}
    for _eid, members in known.groupby("election_id"):
        ids = [str(i) for i in members["id"]]
        regions = dict(zip(ids, members["region"], strict=False))
        for cid in ids:
            same = [i for i in ids if i != cid and regions[i] == regions[cid]]
            peers = same if len(same) >= min_peers else [i for i in ids if i != cid]
            if len(peers) >= min_peers:
                out[cid] = peers
    return out


def test_peer_groups_equal_the_pairwise_comparison():
    rng = np.random.default_rng(5)
    n = 60
    constituencies = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "election_id": rng.choice(np.array(["e1", "e2", None], dtype=object), n),
            "region": rng.choice(np.array(["north", "south", "east", None, np.nan], dtype=object), n),
            "registered": rng.choice([0, 100, 500], n),
        }
    )
    got = peer_groups(constituencies)
    want = _peer_groups_one_by_one(constituencies)
    assert list(got.items()) == list(want.items())


@pytest.mark.parametrize("seed", range(12))
def test_expected_shapes_equal_those_worked_out_one_by_one(seed):
    rng = np.random.default_rng(seed)
    n, hours = int(rng.integers(2, 40)), int(rng.integers(2, 30))
    counts = rng.poisson(rng.uniform(0, 20), (n, hours)).astype(float)
    counts[rng.random(n) < 0.15] = 0.0  # constituencies without a vote
    ids = [f"c{i:02d}" for i in range(n)]
    regions = rng.choice(["north", "south", "east"], n)
    constituencies = pd.DataFrame({"id": ids, "election_id": "e", "region": regions, "registered": 1000})
    peers = peer_groups(constituencies)
    start = datetime(2024, 9, 6, 5)
    model = volume._model("e", ids, [start + timedelta(hours=h) for h in range(hours)], counts, peers, None, 1.5)
    totals = counts.sum(axis=1)
    with np.errstate(all="ignore"):
        shares = counts / np.where(totals > 0, totals, np.nan)[:, None]
    row = {cid: i for i, cid in enumerate(ids)}
    similar = [[math.fsum(np.sqrt(np.nan_to_num(shares[i] * shares[j]))) for j in range(n)] for i in range(n)]
    neighbours = volume.shape_neighbours(shares, totals > 0)
    for cid, i in row.items():
        others = [j for j in range(n) if j != i and totals[j] > 0]
        k = min(volume.SHAPE_NEIGHBOURS, len(others))
        if k < volume.NEIGHBOURS_MIN:
            peer_rows = [row[p] for p in peers.get(cid, []) if totals[row[p]] > 0]
            assert len(neighbours[i]) == 0 and model.neighbour_ids(cid) == []
            assert np.array_equal(model.shape[i], volume._expected_shape(shares, others, peer_rows, hours))
            continue
        # the k others most like it (by the Bhattacharyya coefficient; ties either way)
        chosen = set(neighbours[i].tolist())
        assert len(chosen) == k and chosen <= set(others)
        worst_chosen = min(similar[i][j] for j in chosen)
        assert all(similar[i][j] <= worst_chosen + 1e-12 for j in others if j not in chosen)
        # their trimmed mean (one dropped at each end of 8), scaled to sum to 1
        kept = np.sort(shares[sorted(chosen)], axis=0)[1:-1] if k >= 5 and int(0.2 * k) else shares[sorted(chosen)]
        mean = kept.mean(axis=0)
        assert np.allclose(model.shape[i], mean / mean.sum(), rtol=1e-12, atol=0)
        assert model.neighbour_ids(cid) == [ids[j] for j in neighbours[i]]
        assert volume.trimmed_count(k) == len(kept)
