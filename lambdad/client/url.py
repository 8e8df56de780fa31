"""``lambdad url-public NAME``: let anyone call a function URL with auth type NONE, in one step.

AWS requires two resource-policy statements for that (``lambda:InvokeFunctionUrl`` with the
``lambda:FunctionUrlAuthType`` condition, and ``lambda:InvokeFunction``); this adds both, and is
safe to repeat. It then prints the URL.
"""

from __future__ import annotations

import argparse
from typing import Any

from lambdad.client.session import connect, connection_parser

STATEMENTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("FunctionURLAllowPublicAccess", "lambda:InvokeFunctionUrl", {"FunctionUrlAuthType": "NONE"}),
    ("FunctionURLInvokeAllowPublicAccess", "lambda:InvokeFunction", {}),
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "url-public",
        parents=[connection_parser()],
        help="let anyone call a function's URL (auth type NONE): adds the two permissions AWS requires",
        description="Add the resource-policy statements that open a function URL with auth type NONE "
        "to everyone, then print the URL. Repeating it changes nothing.",
    )
    parser.add_argument("name", help="function name or ARN")
    parser.add_argument("--qualifier", help="alias the URL belongs to, if not the function itself")
    parser.set_defaults(run=run)


def grant(lam: Any, name: str, qualifier: str | None) -> list[str]:
    """Add the missing statements; returns the ids added."""
    added = []
    target = {"FunctionName": name, **({"Qualifier": qualifier} if qualifier else {})}
    for sid, action, extra in STATEMENTS:
        try:
            lam.add_permission(**target, StatementId=sid, Action=action, Principal="*", **extra)
            added.append(sid)
        except lam.exceptions.ResourceConflictException:
            pass  # already granted
    return added


def run(args: argparse.Namespace) -> int:
    lam = connect(args).client("lambda")
    target = {"FunctionName": args.name, **({"Qualifier": args.qualifier} if args.qualifier else {})}
    config = lam.get_function_url_config(**target)
    added = grant(lam, args.name, args.qualifier)
    if config.get("AuthType") != "NONE":
        print(f"note: the URL's auth type is {config.get('AuthType')}; callers must still sign requests")
    print(("granted: " + ", ".join(added)) if added else "already public")
    print(config["FunctionUrl"])
    return 0
