"""Paired ratios and placement regimes of one benchmark run (pure functions).

On VMs whose vCPUs move on the host, the cache-line round trip between the two
CPUs a run uses (its *limit*) moves 3-4x from one minute to the next, and
every cross-process figure moves with it. Two figures taken minutes apart can
therefore differ 3x for that reason alone. shmds_ipc_bench records the limit
before and after every multi-process run (limit_rtt_before_ns,
limit_rtt_after_ns), and runs the members of each headline group in rounds
(paired/<group>/<benchmark>/round:<k>: every member once per round, in a
fresh random order, the rounds spread over the whole run). This module:

- sorts the runs of a results file into *regimes* by their limit (clusters
  of limit values separated by gaps wider than a quarter);
- takes a ratio only between two runs of the same round whose four limits
  agree within a quarter and lie in the same regime (the others are
  discarded and counted);
- summarizes the ratios of each regime as their median with a
  distribution-free confidence interval: two order statistics of the ratios,
  chosen by the binomial distribution so that the interval holds the true
  median with at least 95% probability whatever the ratios' distribution.
  That needs six values (with five, even the smallest and the largest hold
  the median only 94% of the time); fewer get no interval. (A percentile
  bootstrap of the median, used before, held it 73% of the time with three
  values and about 90% with seven to fifteen, in simulation: two runs then
  "disagreed" on ratios that differed by 5%.)

Used by summarize.py, report.py and gate.py; what a run and its names are is
results.py's.
"""
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402

LIMITS_APART = 1.25  # two limits further apart than this factor are different placements
CONFIDENCE = 0.95
MIN_VALUES = 6  # the fewest values whose order statistics bound the median at 95%

def run_limit(row):
    """The limit a run ran under (geometric mean of before and after), or None."""
    before, after = row.get("limit_rtt_before_ns"), row.get("limit_rtt_after_ns")
    if not before or not after:
        return None
    return math.sqrt(float(before) * float(after))


def limit_moved(row):
    """True when the limit moved by more than a quarter during the run."""
    before, after = row.get("limit_rtt_before_ns"), row.get("limit_rtt_after_ns")
    return bool(before and after) and max(before, after) > LIMITS_APART * min(before, after)


# ---- regimes ---------------------------------------------------------------------------------

def find_regimes(limits, gap=LIMITS_APART, min_share=0.01, min_runs=3):
    """Clusters of limit values: [(low, high, runs), ...] in ascending order.

    Sorted values are cut wherever two neighbours are more than `gap` apart
    (a factor), so that two runs whose limits agree within a quarter always
    share a regime. A cluster with fewer than max(min_runs, min_share of all)
    runs is merged into its nearer neighbour: a stray measurement is not a
    regime. The share is small (1%): a run of 1,347 runs had 40 of them near
    400 ns, 1.45x above the next value, and a 5% share merged them into one
    regime of 69-441 ns, a label that hid the placement they ran in."""
    values = sorted(v for v in limits if v and v > 0)
    if not values:
        return []
    clusters = [[values[0]]]
    for v in values[1:]:
        if v > gap * clusters[-1][-1]:
            clusters.append([v])
        else:
            clusters[-1].append(v)
    smallest = max(min_runs, math.ceil(min_share * len(values)))
    while len(clusters) > 1:
        i = min(range(len(clusters)), key=lambda k: len(clusters[k]))
        if len(clusters[i]) >= smallest:
            break
        if i == 0:
            j = 1
        elif i == len(clusters) - 1:
            j = i - 1
        else:  # the neighbour across the narrower gap
            left = clusters[i][0] / clusters[i - 1][-1]
            right = clusters[i + 1][0] / clusters[i][-1]
            j = i - 1 if left <= right else i + 1
        merged = sorted(clusters[i] + clusters[j])
        lo, hi = min(i, j), max(i, j)
        clusters[lo:hi + 1] = [merged]
    return [(c[0], c[-1], len(c)) for c in clusters]


def regime_of(limit, regimes):
    """Index of the regime `limit` belongs to: the one containing it, else the
    nearest on a log scale; None without a limit or regimes."""
    if limit is None or not regimes:
        return None
    def distance(r):
        low, high, _ = r
        if low <= limit <= high:
            return 0.0
        return min(abs(math.log(limit / low)), abs(math.log(limit / high)))
    return min(range(len(regimes)), key=lambda i: distance(regimes[i]))


def regimes_of_run(rows):
    """The regimes of one results file, from every run that carries a limit
    and whose limit held still while it ran."""
    return find_regimes([run_limit(r) for r in results.iterations(rows) if not limit_moved(r)])


def regime_label(regime):
    low, high, runs = regime
    return f"limit {low:.0f}-{high:.0f} ns ({runs} runs)"


# ---- pairs -----------------------------------------------------------------------------------

def rounds(rows, group):
    """{round: {plain name: row}} of one interleaved group."""
    out = {}
    for row in results.iterations(rows):
        name = results.row_name(row)
        if name.group == group:
            out.setdefault(name.round, {})[name.plain] = row
    return out


def median_of(rows, group, name, field):
    """Median of `field` over the rounds of `name` in `group` (None if absent)."""
    values = [r[name][field] for r in rounds(rows, group).values() if name in r and field in r[name]]
    return statistics.median(values) if values else None


def best_of(rows, group, names, field, higher_is_better=True):
    """The member among `names` with the best median `field` in `group` (None if none ran)."""
    medians = {n: m for n in names if (m := median_of(rows, group, n, field)) is not None}
    if not medians:
        return None
    return (max if higher_is_better else min)(medians, key=medians.get)


def pair_ratios(rows, group, a, b, field, regimes):
    """Ratios a/b of `field` between the runs of a and b in the same round.

    Returns {"pairs": [{"round", "ratio", "regime", "a", "b", "limits"}],
    "discarded": {"limits more than a quarter apart": n, "in different regimes": m},
    "rounds": number of rounds with both}. A pair is discarded when any two of
    its four limits (before and after each half) are more than a quarter
    apart, or when its halves fall in different regimes."""
    pairs, apart, across, both = [], 0, 0, 0
    for k, members in sorted(rounds(rows, group).items()):
        ra, rb = members.get(a), members.get(b)
        if ra is None or rb is None or field not in ra or field not in rb or not rb[field]:
            continue
        both += 1
        limits = [x.get(f) for x in (ra, rb) for f in ("limit_rtt_before_ns", "limit_rtt_after_ns")]
        if not all(limits) or max(limits) > LIMITS_APART * min(limits):
            apart += 1
            continue
        regime_a, regime_b = regime_of(run_limit(ra), regimes), regime_of(run_limit(rb), regimes)
        if regime_a != regime_b:
            across += 1
            continue
        pairs.append({"round": k, "ratio": float(ra[field]) / float(rb[field]), "regime": regime_a,
                      "a": float(ra[field]), "b": float(rb[field]), "limits": limits})
    return {"pairs": pairs, "rounds": both,
            "discarded": {"limits more than a quarter apart": apart, "in different regimes": across}}


def run_ratios(rows, name, field, over, regimes):
    """Ratios field/over within each run of `name` (a figure against the limit
    measured beside it; `over` None: the field is a ratio already, such as a
    slowdown timed against a reference right after), wherever the run is (a
    group's rounds or a plain benchmark's repetitions); runs whose limit moved
    by more than a quarter are discarded. Same shape as pair_ratios."""
    pairs, apart, total = [], 0, 0
    for row in results.iterations(rows):
        run = results.row_name(row)
        if run.plain != name or field not in row or (over is not None and not row.get(over)):
            continue
        total += 1
        if run_limit(row) is None or limit_moved(row):
            apart += 1
            continue
        denominator = 1.0 if over is None else float(row[over])
        pairs.append({"round": run.round if run.round is not None else row.get("repetition_index", 0),
                      "ratio": float(row[field]) / denominator, "regime": regime_of(run_limit(row), regimes),
                      "a": float(row[field]), "b": denominator})
    return {"pairs": pairs, "rounds": total,
            "discarded": {"limits more than a quarter apart": apart, "in different regimes": 0}}


def median_ranks(n, confidence=CONFIDENCE):
    """(k, coverage): the k-th smallest and k-th largest of n values bound
    their distribution's median with probability `coverage` >= `confidence`
    (k as large as that allows; the count of values below the median is
    binomial(n, 1/2)); None when even the extremes cannot (n < 6 at 95%)."""
    below = 0.0  # P(at most k - 1 of the n values lie below the median)
    best = None
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        coverage = 1 - 2 * below
        if coverage < confidence:
            break
        best = (k, coverage)
    return best


def interval(values, confidence=CONFIDENCE):
    """(median, low, high): the median of `values` with a distribution-free
    confidence interval (order statistics, median_ranks). low and high are
    None with too few values for one (fewer than six at 95%)."""
    if not values:
        return None, None, None
    median = statistics.median(values)
    ranks = median_ranks(len(values), confidence)
    if ranks is None:
        return median, None, None
    ordered = sorted(values)
    k = ranks[0]
    return median, ordered[k - 1], ordered[len(values) - k]


def by_regime(result, regime_count):
    """[(median, low, high, pairs)] per regime from a pair_ratios/run_ratios result."""
    out = []
    for i in range(regime_count):
        values = [p["ratio"] for p in result["pairs"] if p["regime"] == i]
        out.append(interval(values) + (len(values),))
    return out


def intervals_agree(x, y):
    """True when two (median, low, high) summaries' intervals overlap, False
    when they do not, None when either has no interval (fewer than six
    values: too few to judge)."""
    (_, lo1, hi1), (_, lo2, hi2) = x, y
    if None in (lo1, hi1, lo2, hi2):
        return None
    return lo1 <= hi2 and lo2 <= hi1
