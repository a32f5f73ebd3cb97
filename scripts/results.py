"""Benchmark results as every script reads them (pure functions but for the loaders).

This module owns:

- loading: a run is a folder written by scripts/run-benchmarks (micro.json,
  ipc.json, histograms/) or one Google Benchmark JSON file; an empty file is
  one without rows (Google Benchmark's output when its filter matched nothing);
- which rows are measurements: iterations() (single runs, not the aggregates
  Google Benchmark adds, not the runs that ended in an error);
- the names of the benchmarks: parse_name() takes one apart into a
  BenchmarkName, throughput_name() and ping_pong_name() build the ones the
  headlines look up, histogram_file_prefix() names a run's histogram files;
- the transports: TRANSPORTS, the one list of the transports shmds_ipc_bench
  measures and what each is (the project's, a peer, an in-process ring),
  checked against the list a run writes into its context
  (transport_mismatches; bench/tests/check_results.py).

The names follow bench/ipc/families.hpp (shmds_ipc_bench's) and bench/micro_structures.cpp:

  [paired/GROUP/]PLAIN[/round:K][/iterations:N][/repeats:N][/threads:N][/manual_time|/real_time]

where paired/GROUP/.../round:K is round K of an interleaved group (a run of
PLAIN, see pairs.py) and the rest are Google Benchmark's suffixes. PLAIN is
words separated by '/': two that name the family, then the subject (the
transport, container or structure measured), then KEY:VALUE parameters, and
last, for some, a number (Google Benchmark's argument):

  ipc/throughput/TRANSPORT/payload:BYTES/senders:N/receivers:N/wait:WAIT
  ipc/ping_pong/TRANSPORT/payload:8/wait:WAIT
  ipc/latency/TRANSPORT/payload:8/load:PERCENT%/wait:WAIT
  false_sharing/counters/layout:LAYOUT/processes:N
  array/PATTERN/CONTAINER/BYTES
  discovery/find/STRUCTURE/COUNT, discovery/create_destroy/STRUCTURE/COUNT
  limits/cacheline_round_trip, instructions/MEASUREMENT (gate.py), ...
"""
import json
import os
import re
from typing import NamedTuple

# ---- transports ------------------------------------------------------------------------------

# Every transport shmds_ipc_bench measures, by the name its benchmarks carry
# (bench/adapters, compare/peers, the in-process rings of bench/ipc/schedule.cpp),
# and what it is to the report: the project's own structures, the peers they
# are compared with, or rings (yardsticks for SPSC throughput: two in one
# process, threads; one in shared memory between two processes, through the
# same harness as the project's queues, bench/adapters/shm_ring_channel.hpp;
# and one for MPMC throughput, also there).
# A new peer is one line here: summarize.py's tables and report.py's charts
# take their transports from this list.
TRANSPORTS = {
    "shmds_spsc": "project",
    "shmds_mpmc": "project",
    "shmds_concurrent_stack": "project",
    "shmds_message_queue": "project",
    "boost_lockfree_spsc": "peer",
    "boost_locked_ring": "peer",
    "boost_message_queue": "peer",
    "posix_mq": "peer",
    "pipe": "peer",
    "unix_stream_socket": "peer",
    "zeromq": "peer",
    "nng": "peer",
    "inprocess_spsc_ring": "ring",
    "inprocess_spsc_sequence_ring": "ring",
    "shm_spsc_ring": "ring",
    "shm_mpmc_ring": "ring",
}


def transports(role):
    """The transports of one role ('project', 'peer', 'ring'), in TRANSPORTS' order."""
    return tuple(name for name, r in TRANSPORTS.items() if r == role)


PROJECT, PEERS, RINGS = transports("project"), transports("peer"), transports("ring")
INPROCESS_RINGS = tuple(r for r in RINGS if r.startswith("inprocess_"))
SHARED_RING = "shm_spsc_ring"
SHARED_MPMC_RING = "shm_mpmc_ring"  # the MPMC queue's yardstick, also between two processes


def transports_in_context(context):
    """The transports a run says it measured (shmds_ipc_bench writes them
    into its context as "name:role,..."), as {name: role}; None for a run
    that does not say (runs before the key existed, micro.json)."""
    listed = context.get("transports")
    if listed is None:
        return None
    return dict(entry.rsplit(":", 1) for entry in listed.split(",") if entry)


def copies_in_context(context):
    """{transport: copies of a message's bytes between the sender's buffer and
    the receiver's} as the run says (shmds_ipc_bench's "copies" context,
    "name:copies,..."); None for a run that does not say."""
    listed = context.get("copies")
    if listed is None:
        return None
    return {name: int(n) for name, n in (entry.rsplit(":", 1) for entry in listed.split(",") if entry)}


def transport_mismatches(context):
    """How TRANSPORTS disagrees with what a run says it measured: a line per
    transport missing from TRANSPORTS or listed with another role, and per
    project transport or ring the run did not measure; [] when they agree or
    the run does not say. (Peers may be left out: --no-compare.)"""
    measured = transports_in_context(context)
    if measured is None:
        return []
    found = [f"transport {name} ({role}) is not in scripts/results.py's TRANSPORTS"
             for name, role in measured.items() if name not in TRANSPORTS]
    found += [f"transport {name} is a {role} in the run, a {TRANSPORTS[name]} in TRANSPORTS"
              for name, role in measured.items() if name in TRANSPORTS and TRANSPORTS[name] != role]
    found += [f"transport {name} ({role}) is in TRANSPORTS but the run did not measure it"
              for name, role in TRANSPORTS.items() if role != "peer" and name not in measured]
    return found
WAITS = ("spin", "spin_then_sleep", "sleep")  # the ways of waiting, as benchmark names spell them


# ---- loading ---------------------------------------------------------------------------------

RUN_FILES = ("micro.json", "ipc.json")  # a run's single-process and multi-process results


class ResultsError(Exception):
    """A result that cannot be read; the message names the file and says why."""


def no_rows():
    """A result document without rows or context."""
    return {"context": {}, "benchmarks": []}


def read_result_file(path):
    """The Google Benchmark JSON document at `path`. An empty file is one
    without rows: Google Benchmark leaves its --benchmark_out file empty when
    its filter matched nothing. Raises OSError, or ValueError on bad JSON."""
    with open(path) as f:
        text = f.read()
    return json.loads(text) if text.strip() else no_rows()


def join(documents):
    """One document from several, as if one program had written them all:
    their rows in order, their contexts merged (a later file's keys win)."""
    joined = no_rows()
    for document in documents:
        joined["context"].update(document.get("context", {}))
        joined["benchmarks"] += document.get("benchmarks", [])
    return joined


def load_results(path, files=RUN_FILES):
    """Every row of `path` as one document: the JSON file itself, or, for a
    folder, those of `files` it holds, joined. Raises ResultsError when a
    folder holds none of them or a file cannot be read."""
    if os.path.isdir(path):
        members = [m for m in (os.path.join(path, f) for f in files) if os.path.exists(m)]
        if not members:
            raise ResultsError(f"{path} has none of {', '.join(files)}")
    else:
        members = [path]
    documents = []
    for member in members:
        try:
            documents.append(read_result_file(member))
        except (OSError, ValueError) as e:
            raise ResultsError(f"cannot read {member}: {e}") from e
    return join(documents)


def load_run(folder):
    """A folder written by scripts/run-benchmarks: {"dir", "context", "micro",
    "ipc"}, the rows of micro.json and ipc.json and their contexts merged. A
    file the folder lacks adds nothing (a folder with neither is an empty run)."""
    documents = {}
    for name in RUN_FILES:
        path = os.path.join(folder, name)
        documents[name] = load_results(path) if os.path.exists(path) else no_rows()
    return {"dir": folder, "context": join(documents.values())["context"],
            "micro": documents["micro.json"]["benchmarks"], "ipc": documents["ipc.json"]["benchmarks"]}


def load_histograms(folder):
    """{benchmark name: [(low, high, count), ...]} of the histogram files in
    `folder` (bench/ipc_bench.cpp's --histograms), each benchmark's
    repetitions and rounds merged; {} without the folder."""
    merged = {}
    if not os.path.isdir(folder):
        return merged
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".json"):
            continue
        with open(os.path.join(folder, file)) as f:
            histogram = json.load(f)
        buckets = merged.setdefault(histogram["name"], {})
        for low, high, count in histogram["buckets"]:
            buckets[(low, high)] = buckets.get((low, high), 0) + count
    return {name: sorted((lo, hi, n) for (lo, hi), n in b.items()) for name, b in merged.items()}


# ---- rows ------------------------------------------------------------------------------------

def iterations(rows):
    """The rows that are measurements: single runs (a row without a run_type
    is one), not the aggregates Google Benchmark adds (mean, median, ...) and
    not runs that ended in an error (their figures are not measurements)."""
    return [r for r in rows if r.get("run_type", "iteration") == "iteration" and not r.get("error_occurred")]


def errors(rows):
    """The rows of runs that ended in an error (a benchmark that cannot apply says why in one)."""
    return [r for r in rows if r.get("error_occurred")]


# ---- names -----------------------------------------------------------------------------------

_SUFFIXES = re.compile(r"(/(iterations|repeats|threads):\d+|/manual_time|/real_time)+$")
_PAIRED = re.compile(r"^paired/(?P<group>[^/]+)/(?P<rest>.+)/round:(?P<round>\d+)$")
_PARAMETER = re.compile(r"^(?P<key>\w+):(?P<value>[^:]*)$")  # not 'push_pop<shmds::shm_queue<...>>'


class BenchmarkName(NamedTuple):
    """A benchmark's name taken apart (parse_name)."""
    plain: str  # the benchmark as registered: no round, no Google Benchmark suffix
    group: str | None  # the interleaved group a round belongs to; None for a plain run
    round: int | None  # which round of its group; None for a plain run
    family: str  # its first two words: 'ipc/throughput', 'array/random_read', 'limits/memcpy_64MiB'
    subject: str | None  # its third word: the transport, container or structure measured
    parameters: tuple  # its KEY:VALUE words, as (key, value) strings in order
    argument: int | None  # a last word that is a number: an array's bytes, structures in a segment

    def parameter(self, key):
        """The value of parameter `key` as written ('8', 'spin', '50%'), or None."""
        return dict(self.parameters).get(key)

    def number(self, key):
        """The value of a numeric parameter (payload, senders, ...) as an int, or None."""
        value = self.parameter(key)
        return None if value is None else int(value)

    @property
    def transport(self):
        """The transport an ipc/ benchmark measures (None for any other)."""
        return self.subject if self.family.startswith("ipc/") else None

    payload = property(lambda self: self.number("payload"), doc="Bytes per message (ipc/), or None.")
    senders = property(lambda self: self.number("senders"), doc="Sending processes (ipc/throughput), or None.")
    receivers = property(lambda self: self.number("receivers"), doc="Receiving processes, or None.")
    wait = property(lambda self: self.parameter("wait"), doc="The way of waiting (one of WAITS), or None.")


def parse_name(name):
    """The BenchmarkName of a row's name (see the module's docstring for the
    grammar). A round of an interleaved group, paired/GROUP/PLAIN/round:K, is
    a run of PLAIN; Google Benchmark's suffixes are dropped."""
    plain = _SUFFIXES.sub("", name)
    group = round_ = None
    paired = _PAIRED.match(plain)
    if paired:
        plain, group, round_ = paired["rest"], paired["group"], int(paired["round"])
    words, parameters, argument = [], [], None
    for part in plain.split("/"):
        parameter = _PARAMETER.match(part)
        if parameter:
            parameters.append((parameter["key"], parameter["value"]))
        elif part.isdigit():
            argument = int(part)
        else:
            words.append(part)
    return BenchmarkName(plain, group, round_, "/".join(words[:2]), words[2] if len(words) > 2 else None,
                         tuple(parameters), argument)


def row_name(row):
    """The BenchmarkName of a result row (its run_name: an aggregate's name
    carries a suffix such as _mean after it)."""
    return parse_name(row.get("run_name", row.get("name", "")))


def throughput_name(transport, wait="spin", payload=8, senders=1, receivers=1):
    """The plain name of a throughput benchmark (bench/ipc/families.hpp, register_throughput)."""
    return f"ipc/throughput/{transport}/payload:{payload}/senders:{senders}/receivers:{receivers}/wait:{wait}"


def ping_pong_name(transport, wait="spin"):
    """The plain name of a ping-pong round-trip benchmark, 8 bytes (register_ping_pong)."""
    return f"ipc/ping_pong/{transport}/payload:8/wait:{wait}"


def histogram_file_prefix(plain, round_=None):
    """What the names of the histogram files of benchmark `plain` (of round
    `round_` of its group) start with: bench/ipc/runs.cpp's write_histogram
    appends /repetition:N and turns '/', ':' and '%' into '_'."""
    name = plain if round_ is None else f"{plain}/round:{round_}"
    return re.sub(r"[/:%]", "_", name)
