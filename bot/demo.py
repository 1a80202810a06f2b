"""`python -m bot demo`: an incident played against local stand-ins.

The real bot server runs on 127.0.0.1 with the embedded Redis, a local
Northflank sandbox and a local Slack stand-in that signs every request the
way Slack does. Nothing leaves the machine and no account is needed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.sandbox.harness import Harness, start_harness
from bot.sandbox.northflank import NorthflankSandbox
from bot.sandbox.slack import SlackMessage
from bot.sandbox.transcript import describe

CHANNEL = "C0INCIDENT"
RESPONDER = "U01RESPOND"
VIEWER = "U02VIEWER"
ONCALL = "U03ONCALL"
ONCALL_GROUP = "S01ONCALL"
NAMES = {
    RESPONDER: "alice",
    VIEWER: "bob",
    ONCALL: "carol",
    ONCALL_GROUP: "oncall",
    CHANNEL: "incident-4711",
}
TEAM_ID = "demo-team"
TEMPLATE_ID = "nightly-backup"

DEMO_PERMISSIONS: dict[str, Any] = {
    "roles": {
        "responder": {
            "grants": [
                "Account > Templates > Runs > Abort",
                "Account > Templates > General > Read",
            ],
            "templates": ["*"],
            "channels": ["*"],
        },
        "viewer": {"grants": ["Account > Templates > General > Read"]},
    },
    "users": {RESPONDER: ["responder"], VIEWER: ["viewer"]},
    "usergroups": {ONCALL_GROUP: ["responder"]},
}


class Transcript:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.buttons: list[tuple[SlackMessage, str, int]] = []
        self.seen: dict[int, int] = {}

    def say(self, text: str) -> None:
        print(f"\n» {text}")

    def show_new(self) -> None:
        """Print each message version that has not been printed yet, oldest first."""
        for message in self.harness.slack.messages:
            key = id(message)
            shown = self.seen.get(key, -1)
            versions = [*message.history, (message.text, message.blocks)]
            for number in range(shown + 1, len(versions)):
                text, blocks = versions[number]
                latest = number == len(versions) - 1
                snapshot = replace(message, text=text, blocks=blocks)
                if number > 0:
                    print("   (edited by the bot:)")
                print(
                    _indent(
                        describe(
                            snapshot, NAMES, buttons=self.buttons if latest else None
                        )
                    )
                )
            self.seen[key] = len(versions) - 1


async def run_demo(*, interactive: bool = False) -> int:
    data_dir = Path(os.environ.get("BOT_DATA_DIR", "./.bot-data"))
    northflank = NorthflankSandbox(team_id=TEAM_ID, polls_until_aborted=2)
    northflank.add_template(
        TEMPLATE_ID, "Nightly Backup", "Backs up <prod> & staging DBs"
    )
    northflank.add_template("db-migration", "DB Migration", "Runs schema migrations")
    harness = await start_harness(
        permissions=DEMO_PERMISSIONS,
        redis_url=os.environ.get("REDIS_URL") or None,
        data_dir=data_dir,
        northflank=northflank,
        env={
            "BOT_WATCH_INTERVAL": "0.5",
            "BOT_RUN_URL_TEMPLATE": (
                "https://app.northflank.com/t/{team_id}/templates/{template_id}/runs/{run_id}"
            ),
        },
    )
    harness.slack.usergroups[ONCALL_GROUP] = [ONCALL]
    harness.slack.user_names.update(NAMES)
    first_run = northflank.add_run(TEMPLATE_ID, status="running")
    northflank.add_run(TEMPLATE_ID, status="queued")
    northflank.add_run(TEMPLATE_ID, status="success")
    transcript = Transcript(harness)
    print(
        "Demo: the bot server listens on " + harness.url + ", with a local Northflank "
        "sandbox and a local Slack stand-in.\n"
        "alice is a responder, bob may only read, carol is on call through the "
        "@oncall user group."
    )
    try:
        if interactive:
            return await _interactive(harness, transcript)
        return await _scripted(harness, transcript, first_run)
    finally:
        await harness.stop()


async def _scripted(harness: Harness, transcript: Transcript, run_id: str) -> int:
    slack = harness.slack
    northflank = harness.northflank

    transcript.say(f"alice types: /nf runs {TEMPLATE_ID}")
    await slack.command(f"runs {TEMPLATE_ID}", user=RESPONDER, channel=CHANNEL)
    await harness.settle()
    transcript.show_new()
    run_list = await slack.wait_for(lambda m: bool(m.buttons()) and not m.ephemeral)

    transcript.say("bob presses Abort on the running run")
    await slack.click(run_list, user=VIEWER, action_id="abort_run", index=0)
    await harness.settle()
    transcript.show_new()

    transcript.say(
        "alice presses Abort on the same run, and carol presses it at once too"
    )
    await asyncio.gather(
        slack.click(run_list, user=RESPONDER, action_id="abort_run", index=0),
        slack.click(run_list, user=ONCALL, action_id="abort_run", index=0),
    )
    await harness.settle(timeout=60)
    transcript.show_new()

    transcript.say("alice types: /nf status with a pasted run URL")
    url = (
        f"https://app.northflank.com/t/{TEAM_ID}/templates/{TEMPLATE_ID}/runs/{run_id}"
    )
    await slack.command(f"status <{url}>", user=RESPONDER, channel=CHANNEL)
    await harness.settle()
    transcript.show_new()

    transcript.say(f"alice types: /nf abort {TEMPLATE_ID} {run_id}")
    await slack.command(
        f"abort {TEMPLATE_ID} {run_id}", user=RESPONDER, channel=CHANNEL
    )
    await harness.settle()
    transcript.show_new()

    transcript.say(f"bob types: /nf audit {TEMPLATE_ID}")
    await slack.command(f"audit {TEMPLATE_ID}", user=VIEWER, channel=CHANNEL)
    await harness.settle()
    transcript.show_new()

    transcript.say("bob types: /nf abort Nightly Backup")
    await slack.command("abort Nightly Backup", user=VIEWER, channel=CHANNEL)
    await harness.settle()
    transcript.show_new()

    aborts = northflank.aborts()
    print(
        f"\nNorthflank received {aborts} abort request(s); run {run_id} is "
        f"{northflank.runs[(TEMPLATE_ID, run_id)]['status']}."
    )
    ok = aborts == 1 and northflank.runs[(TEMPLATE_ID, run_id)]["status"] == "aborted"
    if not ok:
        print(
            "error: the demo did not end with exactly one abort and an aborted run",
            file=sys.stderr,
        )
        return 1
    return 0


async def _interactive(harness: Harness, transcript: Transcript) -> int:
    users = {
        name: user_id for user_id, name in NAMES.items() if user_id.startswith("U")
    }
    current = "alice"
    print(
        "\nType a slash command such as `/nf runs nightly-backup`, `press N` to press "
        "button N, `as bob` to act as another user (alice, bob, carol), or `quit`."
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, _prompt, f"{current}> ")
        if line is None or line.strip() in ("quit", "exit"):
            return 0
        line = line.strip()
        if not line:
            continue
        if line.startswith("as "):
            name = line[3:].strip()
            if name in users:
                current = name
            else:
                print("unknown user; choose alice, bob or carol")
            continue
        if line.startswith("press "):
            try:
                number = int(line[6:])
                if number < 1:
                    raise IndexError(number)
                message, action_id, index = transcript.buttons[number - 1]
            except (ValueError, IndexError):
                print("no such button; press one of the numbers shown in brackets")
                continue
            await harness.slack.click(
                message, user=users[current], action_id=action_id, index=index
            )
        elif line == "/nf" or line.startswith("/nf "):
            await harness.slack.command(
                line[3:].strip(), user=users[current], channel=CHANNEL
            )
        else:
            print("type /nf ..., press N, as NAME or quit")
            continue
        await asyncio.sleep(0.05)
        await harness.settle(timeout=60)
        transcript.show_new()


def _prompt(text: str) -> str | None:
    try:
        return input(text)
    except EOFError:
        return None


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
