"""Scenarios driven one request at a time by a Python client.

Click-to-abort timing and the Northflank calls per user action need the
order of events, not load, so they use httpx. Arrival times come from the
stand-ins (bench/standins.py), which record time.time() as each request
arrives; the stand-ins and this process read the same clock.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.render import ABORT_ACTION
from bot.signing import sign

USER = "U0BENCH01"
CHANNEL = "C0BENCH01"
CLICK_TEMPLATE = "bench-click"
FLOOR_TEMPLATE = "bench-floor"
CALLS_TEMPLATE = "bench-calls"
POLL_SECONDS = 0.005
# A healthy bot's GET arrives within milliseconds. Its Northflank client waits
# at most 3 s for a free pooled connection before it retries.
PROBE_TIMEOUT_SECONDS = 5.0
CONCURRENT_CLICKS = 10
ONE_CALL_PER_ABORT = "one call per abort"
NO_CALL_WHEN_CACHED = "no call when cached"


class ScenarioFailed(RuntimeError):
    """An expected request or reply did not arrive in time."""


@dataclass
class Records:
    """Requests that the stand-ins recorded since a point in time."""

    northflank: list[dict[str, Any]]
    slack: list[dict[str, Any]]
    responses: list[dict[str, Any]]

    def response(self, token: str) -> dict[str, Any] | None:
        return next((r for r in self.responses if r["token"] == token), None)

    def abort_post(self, run_id: str) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in self.northflank
                if r["method"] == "POST" and r["path"].endswith(f"/{run_id}/abort")
            ),
            None,
        )

    def slack_call(self, method: str, text: str) -> dict[str, Any] | None:
        """Find the first call of `method` whose message text contains `text`."""
        return next(
            (
                c
                for c in self.slack
                if c["method"] == method and text in (c.get("text") or "")
            ),
            None,
        )


class StandIns:
    """Client of the stand-ins' control API and of the stand-ins themselves."""

    def __init__(
        self, urls: dict[str, str], *, northflank_token: str, slack_token: str
    ):
        self.northflank_url = urls["northflank_url"]
        self.slack_api_url = urls["slack_api_url"]
        self.control = httpx.Client(base_url=urls["control_url"], timeout=10)
        self.northflank_token = northflank_token
        self.slack_token = slack_token

    def close(self) -> None:
        self.control.close()

    def add_run(self, template_id: str) -> str:
        response = self.control.post("/runs", json={"template_id": template_id})
        response.raise_for_status()
        return str(response.json()["run_id"])

    def slash_body(self, text: str) -> tuple[bytes, str]:
        """Return a `/nf` body and the token of its response URL."""
        bodies, tokens = self.slash_bodies(text, 1)
        return bodies[0], tokens[0]

    def slash_bodies(self, text: str, count: int) -> tuple[list[bytes], list[str]]:
        """Return `count` `/nf` bodies that differ only in their response URL."""
        data = {"text": text, "user": USER, "channel": CHANNEL, "count": count}
        return self._bodies("/slash", data)

    def show_card(self, template_id: str, run_id: str) -> str:
        """Show a run's confirmation card without the bot and return its token."""
        data = {
            "template_id": template_id,
            "run_id": run_id,
            "user": USER,
            "channel": CHANNEL,
        }
        response = self.control.post("/card", json=data)
        response.raise_for_status()
        return str(response.json()["token"])

    def click_body(self, card_token: str) -> tuple[bytes, str]:
        """Return an Abort click on the card that `card_token` delivered."""
        bodies, tokens = self.click_bodies(card_token, 1)
        return bodies[0], tokens[0]

    def click_bodies(
        self, card_token: str, count: int
    ) -> tuple[list[bytes], list[str]]:
        """Return `count` Abort clicks on one card, each with its own response URL."""
        data = {
            "token": card_token,
            "user": USER,
            "action_id": ABORT_ACTION,
            "count": count,
        }
        return self._bodies("/click", data)

    def _bodies(self, path: str, data: dict[str, Any]) -> tuple[list[bytes], list[str]]:
        response = self.control.post(path, json=data)
        response.raise_for_status()
        result = response.json()
        bodies = [str(body).encode() for body in result["bodies"]]
        return bodies, [str(token) for token in result["tokens"]]

    def records(self, since: float) -> Records:
        response = self.control.get("/records", params={"since": repr(since)})
        response.raise_for_status()
        data = response.json()
        return Records(data["northflank"], data["slack"], data["responses"])

    def reset(self) -> None:
        self.control.post("/reset").raise_for_status()

    def wait_for(
        self,
        since: float,
        ready: Callable[[Records], bool],
        *,
        description: str,
        timeout: float = 10.0,
    ) -> Records:
        deadline = time.monotonic() + timeout
        while True:
            records = self.records(since)
            if ready(records):
                return records
            if time.monotonic() > deadline:
                raise ScenarioFailed(
                    f"{description}: nothing arrived within {timeout:.0f} s"
                )
            time.sleep(POLL_SECONDS)


class BotClient:
    """Signed requests to a server's /slack/events, and the bot's /healthz."""

    def __init__(self, port: int, signing_secret: str) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.signing_secret = signing_secret
        self.sent = 0

    def close(self) -> None:
        self.http.close()

    def send(self, body: bytes) -> float:
        """POST a body signed now and return the seconds until the response arrived."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self.signing_secret, timestamp, body),
        }
        started = time.perf_counter()
        response = self.http.post("/slack/events", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        self.sent += 1
        if response.status_code != 200:
            raise ScenarioFailed(
                f"POST /slack/events returned HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        return elapsed

    def health(self) -> dict[str, Any]:
        response = self.http.get("/healthz")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def settle(self, timeout: float = 120.0) -> float:
        """Wait until only followers remain in flight and return the seconds waited.

        Each followed run keeps one task in the bot's registry, so the work
        started by earlier requests is done once no other task remains.
        """
        started = time.monotonic()
        while True:
            health = self.health()
            if health["in_flight"] <= health["following"]:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise ScenarioFailed(
                    f"the bot still has {health['in_flight']} tasks in flight "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.05)

    def wait_following_done(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health()["following"]:
            if time.monotonic() > deadline:
                raise ScenarioFailed(
                    f"the bot still follows runs after {timeout:.0f} s"
                )
            time.sleep(0.05)


def show_abort_card(
    bot: BotClient, stand_ins: StandIns, template_id: str, run_id: str
) -> str:
    """Type `/nf abort` for a run and return the token of the reply with the card."""
    body, token = stand_ins.slash_body(f"abort {template_id} {run_id}")
    since = time.time()
    bot.send(body)
    # The bot's Northflank client gives up after 10 s, and its reply follows that.
    stand_ins.wait_for(
        since,
        lambda r: _delivered(r, token),
        description=f"abort card of run {run_id}",
        timeout=30,
    )
    return token


def _delivered(records: Records, token: str) -> bool:
    arrival = records.response(token)
    return arrival is not None and arrival["message_ts"] is not None


def probe_northflank(
    bot: BotClient,
    stand_ins: StandIns,
    template_id: str,
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> float | None:
    """Read an uncached run with `/nf status`.

    Returns the seconds until its GET reached the Northflank stand-in, or None
    if none arrived within `timeout`.
    """
    run_id = stand_ins.add_run(template_id)
    body, _ = stand_ins.slash_body(f"status {template_id} {run_id}")
    since = time.time()
    bot.send(body)
    try:
        records = stand_ins.wait_for(
            since,
            lambda r: any(run_id in x["path"] for x in r.northflank),
            description="probe",
            timeout=timeout,
        )
    except ScenarioFailed:
        return None
    arrival = next(x for x in records.northflank if run_id in x["path"])
    return float(arrival["at"]) - since


def warm_status(
    bot: BotClient, stand_ins: StandIns, template_id: str, run_id: str
) -> None:
    """Read a run once with `/nf status`, so later reads come from the cache."""
    body, token = stand_ins.slash_body(f"status {template_id} {run_id}")
    since = time.time()
    bot.send(body)
    stand_ins.wait_for(
        since, lambda r: _delivered(r, token), description="status reply"
    )


# -- click to abort --------------------------------------------------------


@dataclass
class Timings:
    """Samples in seconds of one path, summarized in milliseconds."""

    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.samples, 95) * 1000


def percentile(samples: list[float], percent: float) -> float:
    """Return the nearest-rank percentile of the samples."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def click_to_abort(bot: BotClient, stand_ins: StandIns, samples: int) -> list[Timings]:
    """Press Abort on a fresh run each time; time the ack, the abort and the summary."""
    ack = Timings("Click → ack received (HTTP response)")
    to_northflank = Timings("Click → abort POST at the Northflank stand-in")
    to_summary = Timings("Click → summary (chat.postMessage) at the Slack stand-in")
    for _ in range(samples):
        run_id = stand_ins.add_run(CLICK_TEMPLATE)
        card = show_abort_card(bot, stand_ins, CLICK_TEMPLATE, run_id)
        body, click_token = stand_ins.click_body(card)
        started = time.time()
        ack.samples.append(bot.send(body))
        records = stand_ins.wait_for(
            started, _aborted(run_id, click_token), description=f"abort of run {run_id}"
        )
        post = records.abort_post(run_id)
        summary = records.slack_call("chat.postMessage", run_id)
        assert post is not None and summary is not None
        to_northflank.samples.append(post["at"] - started)
        to_summary.samples.append(summary["at"] - started)
    return [ack, to_northflank, to_summary]


def _aborted(run_id: str, click_token: str) -> Callable[[Records], bool]:
    """Match the abort POST, the summary and the reply to the click."""

    def ready(records: Records) -> bool:
        return (
            records.abort_post(run_id) is not None
            and records.slack_call("chat.postMessage", run_id) is not None
            and records.response(click_token) is not None
        )

    return ready


def _abort_posted(run_id: str) -> Callable[[Records], bool]:
    def ready(records: Records) -> bool:
        return records.abort_post(run_id) is not None

    return ready


def floors(stand_ins: StandIns, samples: int) -> list[Timings]:
    """Time plain httpx POSTs to the stand-ins, on warm keep-alive connections."""
    to_northflank = Timings("Floor: httpx POST → Northflank stand-in")
    to_slack = Timings("Floor: httpx POST → Slack stand-in (chat.postMessage)")
    chained = Timings("Floor: Northflank abort round trip, then POST → Slack stand-in")
    northflank = httpx.Client(
        base_url=stand_ins.northflank_url,
        headers={"Authorization": f"Bearer {stand_ins.northflank_token}"},
        timeout=10,
    )
    slack = httpx.Client(
        base_url=stand_ins.slack_api_url,
        headers={"Authorization": f"Bearer {stand_ins.slack_token}"},
        timeout=10,
    )
    with northflank, slack:
        # One untimed request each opens the connections that the samples reuse.
        _abort_directly(northflank, stand_ins.add_run(FLOOR_TEMPLATE))
        slack.post("chat.postMessage", json={"channel": CHANNEL, "text": "warm-up"})
        for _ in range(samples):
            run_id = stand_ins.add_run(FLOOR_TEMPLATE)
            started = time.time()
            _abort_directly(northflank, run_id)
            records = stand_ins.wait_for(
                started, _abort_posted(run_id), description="floor abort"
            )
            post = records.abort_post(run_id)
            assert post is not None
            to_northflank.samples.append(post["at"] - started)

            to_slack.samples.append(_post_to_slack(stand_ins, slack, f"floor {run_id}"))

            chain_run = stand_ins.add_run(FLOOR_TEMPLATE)
            started = time.time()
            _abort_directly(northflank, chain_run)
            arrived = _post_to_slack(stand_ins, slack, f"chain {chain_run}", started)
            chained.samples.append(arrived)
    return [to_northflank, to_slack, chained]


def _abort_directly(client: httpx.Client, run_id: str) -> None:
    path = f"/v1/templates/{FLOOR_TEMPLATE}/runs/{run_id}/abort"
    client.post(path).raise_for_status()


def _post_to_slack(
    stand_ins: StandIns, client: httpx.Client, text: str, started: float | None = None
) -> float:
    """POST chat.postMessage and return the seconds from `started` (default: now)
    until it arrived."""
    begin = time.time() if started is None else started
    client.post("chat.postMessage", json={"channel": CHANNEL, "text": text})
    records = stand_ins.wait_for(
        begin, lambda r: r.slack_call("chat.postMessage", text) is not None,
        description="floor chat.postMessage",
    )  # fmt: skip
    call = records.slack_call("chat.postMessage", text)
    assert call is not None
    return float(call["at"]) - begin


# -- Northflank calls per user action -------------------------------------


@dataclass
class CallCount:
    """The Northflank requests that one user action caused."""

    action: str
    kinds: Counter[str]
    expected: int
    # The target this count is evidence for: ONE_CALL_PER_ABORT,
    # NO_CALL_WHEN_CACHED, or None.
    checks: str | None = None

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def classify(record: dict[str, Any]) -> str:
    path = str(record["path"])
    if record["method"] == "POST" and path.endswith("/abort"):
        return "POST abort"
    if path.endswith("/runs"):
        return "GET runs"
    if "/runs/" in path:
        return "GET run"
    return f"{record['method']} {path}"


def _count(records: Records, until: float, match: str) -> Counter[str]:
    return Counter(
        classify(r)
        for r in records.northflank
        if r["at"] <= until and match in r["path"]
    )


def calls_per_action(bot: BotClient, stand_ins: StandIns) -> list[CallCount]:
    """Play each user action alone and count the Northflank requests it caused."""
    counts: list[CallCount] = []
    runs = [stand_ins.add_run(CALLS_TEMPLATE) for _ in range(3)]
    template_path = f"/templates/{CALLS_TEMPLATE}/"

    def command(
        text: str, action: str, expected: int, checks: str | None = None
    ) -> str:
        body, token = stand_ins.slash_body(text)
        since = time.time()
        bot.send(body)
        records = stand_ins.wait_for(
            since, lambda r: _delivered(r, token), description=f"reply to /nf {text}"
        )
        reply = records.response(token)
        assert reply is not None
        calls = _count(records, reply["at"], template_path)
        counts.append(CallCount(action, calls, expected, checks))
        return token

    command(f"status {CALLS_TEMPLATE} {runs[0]}", "`/nf status`, run not cached", 1)
    command(
        f"status {CALLS_TEMPLATE} {runs[0]}",
        "`/nf status` inside the freshness window",
        0,
        NO_CALL_WHEN_CACHED,
    )
    command(f"runs {CALLS_TEMPLATE}", "`/nf runs`", 1)
    card = command(
        f"abort {CALLS_TEMPLATE} {runs[1]}",
        "`/nf abort` (confirmation card, run cached by `/nf runs`)",
        0,
    )

    body, click_token = stand_ins.click_body(card)
    started = time.time()
    bot.send(body)
    records = stand_ins.wait_for(
        started,
        lambda r: (
            r.response(click_token) is not None
            and r.slack_call("chat.postMessage", runs[1]) is not None
        ),
        description="abort click",
    )
    reply = records.response(click_token)
    assert reply is not None
    calls = _count(records, reply["at"], runs[1])
    counts.append(CallCount("Abort click", calls, 1, ONE_CALL_PER_ABORT))

    concluded_text = f"run {runs[1]} is aborted"
    records = stand_ins.wait_for(
        started,
        lambda r: r.slack_call("chat.update", concluded_text) is not None,
        description="summary of the followed run",
        timeout=60,
    )
    final = records.slack_call("chat.update", concluded_text)
    assert final is not None
    counts.append(
        CallCount(
            "Abort click, then following the run until it concluded",
            _count(records, final["at"], runs[1]),
            3,
        )
    )

    counts.append(concurrent_clicks(bot, stand_ins, runs[2]))
    return counts


def concurrent_clicks(bot: BotClient, stand_ins: StandIns, run_id: str) -> CallCount:
    """Press Abort on one card from several connections at once."""
    card = show_abort_card(bot, stand_ins, CALLS_TEMPLATE, run_id)
    bodies, tokens = stand_ins.click_bodies(card, CONCURRENT_CLICKS)
    barrier = threading.Barrier(CONCURRENT_CLICKS)
    clients = [BotClient(_port_of(bot), bot.signing_secret) for _ in bodies]

    def press(index: int) -> None:
        barrier.wait()
        clients[index].send(bodies[index])

    started = time.time()
    try:
        with ThreadPoolExecutor(CONCURRENT_CLICKS) as pool:
            list(pool.map(press, range(CONCURRENT_CLICKS)))
    finally:
        for client in clients:
            bot.sent += client.sent
            client.close()
    records = stand_ins.wait_for(
        started,
        lambda r: all(r.response(token) is not None for token in tokens),
        description="replies to concurrent clicks",
    )
    last = max(float(r["at"]) for r in records.responses if r["token"] in tokens)
    return CallCount(
        f"{CONCURRENT_CLICKS} concurrent Abort clicks on one run",
        _count(records, last, run_id),
        1,
        ONE_CALL_PER_ABORT,
    )


def _port_of(bot: BotClient) -> int:
    port = bot.http.base_url.port
    assert port is not None
    return port
