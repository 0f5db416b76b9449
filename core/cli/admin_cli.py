"""`python server.py admin|users|events …`: the admin API's functions for an operator on the
machine, against the configured store. Actions are audited as `cli:<login name>`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from core.config import Config
from core.config.admin_config import ADMIN_KEY_NAME
from core.domain.admin import EventFilter, new_admin_key
from core.domain.errors import ApiError
from core.domain.events import audit_sink_var, client_ip_var
from core.infra.logs import request_id_var

COMMANDS = ("admin", "users", "events")
FOLLOW_SECONDS = 1.0


def add_admin_commands(commands: Any) -> None:
    """The operator commands, on the subparsers of server.py's parser."""
    admin = commands.add_parser("admin", help="admin API keys")
    admin_actions = admin.add_subparsers(dest="admin_command", required=True)
    new_key = admin_actions.add_parser("new-key", help="print a fresh key and its config line")
    new_key.add_argument("name", help="the key's name in the audit log: a-z, 0-9, _ and -")

    users = commands.add_parser(
        "users", help="find, disable, enable, sign out, delete a user or reset its second factors"
    )
    user_actions = users.add_subparsers(dest="users_command", required=True)
    find = user_actions.add_parser("find", help="users by email, phone or provider:subject")
    find.add_argument("query")
    for action, text in (
        ("disable", "block the user and end every session"),
        ("enable", "unblock the user"),
        ("revoke", "sign the user out everywhere"),
        ("delete", "delete the user, as the user's own account deletion does"),
        ("reset-mfa", "remove the user's second factors (TOTP, recovery codes, passkeys)"),
    ):
        user_actions.add_parser(action, help=text).add_argument("id", help="the user id")

    events = commands.add_parser("events", help="read the audit log")
    event_actions = events.add_subparsers(dest="events_command", required=True)
    tail = event_actions.add_parser("tail", help="the latest events, oldest first, as JSON Lines")
    tail.add_argument("-n", "--limit", type=int, default=20, help="how many (1-200)")
    tail.add_argument("--user", default=None, help="only this user's events")
    tail.add_argument("--type", default=None, help="only events of this type")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")


def new_key_text(name: str) -> str:
    """A fresh key and the configuration that accepts it: the key itself is not kept."""
    key, digest = new_admin_key()
    text = (
        f"{key}\n"
        "# The key above is shown once. The configuration keeps only its SHA-256:\n"
        f"admin:\n  keys:\n    {name}: {digest}\n"
    )
    if "-" not in name:  # a shell cannot name a variable with "-"
        text += f"# or in the environment: VHOD_ADMIN__KEYS__{name.upper()}={digest}\n"
    return text


def operator_name() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return "cli:" + re.sub(r"[^A-Za-z0-9_.-]", "_", login)[:32]


def run_admin_command(
    config: Config, args: argparse.Namespace, build_services: Callable[..., Awaitable[Any]]
) -> int:
    """Run one operator command; the exit status. `build_services` is server.py's."""
    if args.command == "admin":
        if not ADMIN_KEY_NAME.match(args.name):
            print("vhod: a key name is 1-32 of a-z, 0-9, _ and -", file=sys.stderr)
            return 2
        print(new_key_text(args.name), end="")
        return 0
    return asyncio.run(_with_services(config, args, build_services))


async def _with_services(
    config: Config, args: argparse.Namespace, build_services: Callable[..., Awaitable[Any]]
) -> int:
    services = await build_services(config)
    # This command's events go to the store like a request's, from the machine itself.
    audit_sink_var.set(services.audit)
    client_ip_var.set("local")
    request_id_var.set("cli-" + os.urandom(8).hex())
    try:
        if args.command == "users":
            await _users(services.admin, args)
        else:
            await _events(services.admin, args)
        return 0
    except ApiError as exc:
        print(f"vhod: {exc.description}", file=sys.stderr)
        return 1
    finally:
        await services.close()


async def _users(admin: Any, args: argparse.Namespace) -> None:
    name = operator_name()
    if args.users_command == "find":
        found = await admin.find_users(args.query, limit=200)
        for user in found["users"]:
            _print(user)
        if not found["users"]:
            print("vhod: no user matches", file=sys.stderr)
        return
    action = {
        "disable": admin.disable,
        "enable": admin.enable,
        "revoke": admin.revoke_sessions,
        "delete": admin.delete,
        "reset-mfa": admin.reset_mfa,
    }
    _print(await action[args.users_command](args.id, name))


async def _events(admin: Any, args: argparse.Namespace) -> None:
    if not 1 <= args.limit <= 200:
        raise ApiError(400, "invalid_request", "--limit must be from 1 to 200.")
    selected = EventFilter.parse(args.user, args.type, None, None)
    page = await admin.events(selected, limit=args.limit)
    latest = list(reversed(page["events"]))
    for event in latest:
        _print(event)
    if not args.follow:
        return
    after = (latest[-1]["time"], latest[-1]["id"]) if latest else None
    while True:
        await asyncio.sleep(FOLLOW_SECONDS)
        async for events in admin.export(selected, after=after):
            for event in events:
                _print(event)
            after = (events[-1]["time"], events[-1]["id"])


def _print(value: dict[str, Any]) -> None:
    print(json.dumps(value, sort_keys=True), flush=True)
