"""``lambdad deploy``: zip a directory, create or update the function, wait until it can run."""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambdad.client import package
from lambdad.client.errors import EXIT_USAGE, CliError
from lambdad.client.output import Progress, mb, size
from lambdad.client.session import connect, connection_parser

#: Role used when none is given: lambdad records it but, unlike AWS, assumes no IAM role.
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lambdad-function"
#: Packages above this are zipped with a progress line even when stderr is not a terminal.
PROGRESS_ABOVE_BYTES = 5 * 1024 * 1024
WAIT_TIMEOUT_S = 300.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "deploy",
        parents=[connection_parser()],
        help="zip a directory and create or update a function from it",
        description="Zip DIR (deterministically; __pycache__, .git and .lambdad are left out), create the "
        "function or update its code and configuration, and wait until it is Active.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="the function's code")
    parser.add_argument("--name", required=True, help="function name")
    parser.add_argument("--runtime", help="e.g. python3.11, nodejs20.x, provided.al2023 (needed to create)")
    parser.add_argument("--handler", help="e.g. app.handler (needed to create)")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory size in MB (128 to 10240)")
    parser.add_argument("--timeout", type=int, metavar="SECONDS", help="timeout in seconds (1 to 900)")
    parser.add_argument(
        "--env",
        action="append",
        type=env_pair,
        default=[],
        metavar="K=V",
        help="environment variable (repeatable); given on an update, replaces all of them",
    )
    parser.add_argument("--role", help=f"execution role ARN (default {DEFAULT_ROLE})")
    parser.set_defaults(run=run)


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def code_sha256(code: bytes) -> str:
    """CodeSha256 as Lambda reports it: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


def zip_directory(directory: Path, progress: Progress) -> bytes:
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CliError(f"{directory} {what}: give the directory holding the function's code", EXIT_USAGE)
    show = progress.tty

    def on_progress(done: int, total: int) -> None:
        if show or total > PROGRESS_ABOVE_BYTES:
            progress.update(f"zipping {directory}: {mb(done)} of {mb(total)}")

    try:
        code = package.build_zip(directory, on_progress)
    except package.PackageTooLarge as exc:
        progress.done()
        raise CliError(
            f"the package of {directory} is over {mb(package.MAX_ZIPPED_BYTES)} zipped (reached "
            f"{mb(exc.size)}), Lambda's limit for a direct upload: use layers or trim dependencies"
        ) from exc
    progress.done()
    return code


def configuration(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration the flags ask for (only what was given)."""
    wanted: dict[str, Any] = {"Runtime": args.runtime, "Handler": args.handler}
    wanted.update(MemorySize=args.memory, Timeout=args.timeout, Role=args.role)
    if args.env:
        wanted["Environment"] = {"Variables": dict(args.env)}
    return {k: v for k, v in wanted.items() if v is not None}


def changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``wanted`` that differ from the function's ``current`` configuration."""
    now = dict(current)
    now["Environment"] = {"Variables": current.get("Environment", {}).get("Variables", {})}
    return {k: v for k, v in wanted.items() if now.get(k) != v}


def existing(lam: Any, name: str) -> dict[str, Any] | None:
    try:
        config: dict[str, Any] = lam.get_function_configuration(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return None
    return config


def create(lam: Any, args: argparse.Namespace, code: bytes) -> None:
    if args.runtime is None or args.handler is None:
        raise CliError(
            f"{args.name} does not exist yet: give --runtime and --handler to create it", EXIT_USAGE
        )
    wanted = configuration(args)
    wanted.setdefault("Role", DEFAULT_ROLE)
    lam.create_function(FunctionName=args.name, Code={"ZipFile": code}, **wanted)


def update(
    lam: Any, args: argparse.Namespace, code: bytes, current: dict[str, Any], progress: Progress
) -> str:
    """Update what changed; says what was done."""
    done = []
    if current.get("CodeSha256") != code_sha256(code):
        lam.update_function_code(FunctionName=args.name, ZipFile=code)
        done.append("code")
        current = wait_ready(lam, args.name, progress)
    delta = changes(current, configuration(args))
    if delta:
        lam.update_function_configuration(FunctionName=args.name, **delta)
        done.append("configuration (" + ", ".join(sorted(delta)) + ")")
    return "updated " + " and ".join(done) if done else "unchanged: same code and configuration"


def wait_ready(
    lam: Any,
    name: str,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until State is Active and LastUpdateStatus Successful; a failure is raised with its reason."""
    deadline = clock() + WAIT_TIMEOUT_S
    while True:
        config: dict[str, Any] = lam.get_function_configuration(FunctionName=name)
        state, update_status = config.get("State", "Active"), config.get("LastUpdateStatus", "Successful")
        if state == "Failed" or update_status == "Failed":
            progress.done()
            reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or "no reason given"
            raise CliError(f"{name} failed to become ready: {reason}")
        if state == "Active" and update_status == "Successful":
            progress.done()
            return config
        if clock() > deadline:
            progress.done()
            raise CliError(f"{name} is still {state} / {update_status} after {WAIT_TIMEOUT_S:.0f} s")
        progress.update(f"waiting for {name}: State {state}, LastUpdateStatus {update_status}", spin=True)
        sleep(0.2)


def run(args: argparse.Namespace) -> int:
    progress = Progress()
    code = zip_directory(args.directory, progress)
    lam = connect(args).client("lambda")
    current = existing(lam, args.name)
    if current is None:
        create(lam, args, code)
        what = f"created {args.name}"
    else:
        what = f"{args.name}: " + update(lam, args, code, current, progress)
    print(f"{what} ({size(len(code))} zipped)", file=sys.stderr, flush=True)
    config = wait_ready(lam, args.name, progress)
    print(f"FunctionArn: {config['FunctionArn']}")
    print(f"CodeSha256:  {config['CodeSha256']}")
    return 0
