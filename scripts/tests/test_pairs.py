"""Tests of scripts/pairs.py: regimes, pairing, intervals."""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pairs  # noqa: E402


def run(name, group=None, k=None, before=100.0, after=None, **fields):
    full = f"paired/{group}/{name}/round:{k}" if group else name
    return {"name": full + "/iterations:1/repeats:1/manual_time", "run_type": "iteration",
            "limit_rtt_before_ns": before, "limit_rtt_after_ns": before if after is None else after, **fields}


def test_regimes_split_where_limits_lie_more_than_a_quarter_apart():
    near = [95, 100, 104, 110, 118]
    far = [340, 350, 362, 371]
    assert pairs.find_regimes(far + near) == [(95, 118, 5), (340, 371, 4)]
    # a continuum whose neighbours are all within a quarter is one regime, however wide
    continuum = [100 * 1.2 ** i for i in range(8)]
    assert len(pairs.find_regimes(continuum)) == 1
    # exactly a quarter apart is the same regime; just over is not
    assert len(pairs.find_regimes([100, 100, 100, 125, 125, 125])) == 1
    assert len(pairs.find_regimes([100, 100, 100, 125.1, 125.1, 125.1])) == 2


def test_a_stray_limit_is_not_a_regime_of_its_own():
    regimes = pairs.find_regimes([100] * 40 + [500] + [300] * 40)
    assert [r[2] for r in regimes] == [40, 41]  # the stray joins the nearer cluster
    assert pairs.regime_of(500, regimes) == 1 and pairs.regime_of(50, regimes) == 0
    assert pairs.regime_of(None, regimes) is None


def test_pairs_are_taken_within_a_round_and_discarded_when_limits_disagree():
    rows = [run("ipc/throughput/a", "g", 0, items_per_second=10.0), run("ipc/throughput/b", "g", 0, items_per_second=5.0),
            run("ipc/throughput/a", "g", 1, items_per_second=30.0), run("ipc/throughput/b", "g", 1, items_per_second=10.0),
            # round 2: b ran while the limit was 126 ns against a's 100: more than a quarter apart
            run("ipc/throughput/a", "g", 2, items_per_second=10.0),
            run("ipc/throughput/b", "g", 2, before=126.0, items_per_second=1.0),
            # round 3: b's limit moved within its own run
            run("ipc/throughput/a", "g", 3, items_per_second=10.0),
            run("ipc/throughput/b", "g", 3, before=100.0, after=130.0, items_per_second=1.0),
            # round 4 has no b; another group's rounds do not count
            run("ipc/throughput/a", "g", 4, items_per_second=10.0), run("ipc/throughput/b", "h", 4, items_per_second=1.0)]
    regimes = pairs.regimes_of_run(rows)
    result = pairs.pair_ratios(rows, "g", "ipc/throughput/a", "ipc/throughput/b", "items_per_second", regimes)
    assert [(p["round"], p["ratio"]) for p in result["pairs"]] == [(0, 2.0), (1, 3.0)]
    assert result["rounds"] == 4
    assert result["discarded"] == {"limits more than a quarter apart": 2, "in different regimes": 0}


def test_runs_against_their_own_limit_skip_runs_whose_limit_moved():
    rows = [run("ipc/ping_pong/x", p50_ns=120.0), run("ipc/ping_pong/x", p50_ns=300.0, before=100.0, after=200.0),
            run("ipc/ping_pong/x", "g", 0, before=200.0, p50_ns=260.0)]
    regimes = pairs.regimes_of_run(rows)
    result = pairs.run_ratios(rows, "ipc/ping_pong/x", "p50_ns", "limit_rtt_before_ns", regimes)
    assert sorted(p["ratio"] for p in result["pairs"]) == [1.2, 1.3]
    assert result["discarded"]["limits more than a quarter apart"] == 1


def test_interval_brackets_the_median_by_rank_and_needs_six_values():
    median, low, high = pairs.interval([1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 0.8])
    assert (median, low, high) == (1.0, 0.8, 1.2)  # 7 values: the extremes (98.4%); the 2nd ones hold only 87.5%
    ten = [float(v) for v in range(1, 11)]
    assert pairs.interval(ten) == (5.5, 2.0, 9.0)  # 10 values: the 2nd smallest and largest (97.9%)
    assert pairs.interval([1.0, 1.1, 0.9, 1.05, 0.95]) == (1.0, None, None)  # 5: even the extremes hold 93.75%
    assert pairs.interval([1.0, 2.0]) == (1.5, None, None)
    assert pairs.interval([]) == (None, None, None)
    assert pairs.interval([2.0] * 6) == (2.0, 2.0, 2.0)


def test_median_ranks_hold_the_median_at_least_as_often_as_asked():
    assert pairs.median_ranks(5) is None
    assert pairs.median_ranks(6) == (1, 1 - 2 / 64)
    k, coverage = pairs.median_ranks(15)
    assert (k, round(coverage, 4)) == (4, 0.9648)
    for n in range(6, 40):
        k, coverage = pairs.median_ranks(n)
        assert coverage >= 0.95
        # one rank further in would fall short: k is the tightest that holds
        below_k = sum(math.comb(n, j) for j in range(k + 1)) / 2**n
        assert 1 - 2 * below_k < 0.95 or k == n // 2


def test_intervals_agree_when_they_overlap():
    assert pairs.intervals_agree((1.0, 0.9, 1.1), (1.15, 1.05, 1.3))
    assert not pairs.intervals_agree((1.0, 0.9, 1.1), (1.5, 1.3, 1.7))
    # a ratio of one or two pairs has no interval: it is not judged either way
    assert pairs.intervals_agree((1.0, None, None), (1.05, 0.95, 1.1)) is None
    assert pairs.intervals_agree((1.0, None, None), (1.2, 1.1, 1.3)) is None
