"""``lambdad functions``: every function as a table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lambdad.client.output import table
from lambdad.client.session import connect, connection_parser

HEADERS = ("NAME", "RUNTIME", "MEMORY", "TIMEOUT", "LAST MODIFIED", "STATE")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "functions",
        parents=[connection_parser()],
        help="list functions with runtime, memory, timeout and state",
        description="List every function ($LATEST) on the server.",
    )
    parser.set_defaults(run=run)


def row(config: dict[str, Any]) -> list[str]:
    modified = str(config.get("LastModified", ""))[:19].replace("T", " ")
    state = config.get("State", "?")
    update = config.get("LastUpdateStatus", "Successful")
    if update != "Successful":
        state += f" (update {update})"
    return [
        config["FunctionName"],
        config.get("Runtime", "-"),
        f"{config.get('MemorySize', 128)} MB",
        f"{config.get('Timeout', 3)} s",
        modified,
        state,
    ]


def list_all(lam: Any) -> list[dict[str, Any]]:
    """Every function's configuration; State comes from GetFunctionConfiguration where the list lacks it."""
    found: list[dict[str, Any]] = []
    for page in lam.get_paginator("list_functions").paginate():
        found.extend(page.get("Functions", []))
    return [
        c if "State" in c else lam.get_function_configuration(FunctionName=c["FunctionName"]) for c in found
    ]


def run(args: argparse.Namespace) -> int:
    lam = connect(args).client("lambda")
    configs = list_all(lam)
    if not configs:
        print(
            "no functions yet: create one with "
            "`lambdad deploy DIR --name NAME --runtime python3.11 --handler app.handler`",
            file=sys.stderr,
        )
        return 0
    print(
        table(HEADERS, [row(c) for c in sorted(configs, key=lambda c: c["FunctionName"])], frozenset({2, 3}))
    )
    return 0
