"""`GET /metrics`: the Prometheus exposition, parsed."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.sandbox.harness import Harness
from tests.conftest import CHANNEL, RESPONDER, TEMPLATE, VIEWER, channel_posts


async def scrape(bot: Harness) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(bot.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


async def test_metrics_count_requests_and_calls(bot: Harness) -> None:
    run_id = bot.northflank.add_run(TEMPLATE, status="running")
    await bot.slack.command("help", user=VIEWER, channel=CHANNEL)
    await bot.slack.command("nonsense", user=VIEWER, channel=CHANNEL)
    await bot.slack.command(f"status {TEMPLATE} {run_id}", user=VIEWER, channel=CHANNEL)
    await bot.slack.command(f"runs {TEMPLATE}", user=RESPONDER, channel=CHANNEL)
    await bot.settle()
    [listing] = channel_posts(bot.slack)
    await bot.slack.click(listing, user=RESPONDER, action_id="abort_run")
    await bot.settle()

    samples = await scrape(bot)

    requests = samples["nfbot_slack_requests_total"]
    assert requests[(("kind", "command"), ("name", "help"), ("outcome", "ok"))] == 1
    assert (
        requests[(("kind", "command"), ("name", "invalid"), ("outcome", "usage"))] == 1
    )
    assert requests[(("kind", "command"), ("name", "status"), ("outcome", "ok"))] == 1
    assert requests[(("kind", "action"), ("name", "abort"), ("outcome", "ok"))] == 1
    calls = samples["nfbot_northflank_requests_total"]
    assert calls[(("endpoint", "abort_run"), ("status", "200"))] == 1
    assert calls[(("endpoint", "list_runs"), ("status", "200"))] == 1
    assert samples["nfbot_ack_seconds_count"][(("kind", "command"),)] == 4
    assert samples["nfbot_ack_seconds_count"][(("kind", "action"),)] == 1
    assert (
        samples["nfbot_northflank_request_seconds_count"][(("endpoint", "abort_run"),)]
        == 1
    )
    remaining = samples["nfbot_northflank_rate_limit_remaining"][()]
    assert 0 < remaining < 1000
    assert samples["nfbot_redis_up"][()] == 1
    aborts = samples["nfbot_abort_attempts_total"]
    assert aborts[(("outcome", "aborted"),)] == 1


async def test_metrics_count_denials(bot: Harness) -> None:
    await bot.slack.command(f"runs {TEMPLATE}", user="U09NOBODY", channel=CHANNEL)
    await bot.settle()

    samples = await scrape(bot)

    requests = samples["nfbot_slack_requests_total"]
    assert requests[(("kind", "command"), ("name", "runs"), ("outcome", "denied"))] == 1
