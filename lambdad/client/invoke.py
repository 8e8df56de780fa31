"""``lambdad invoke``: run a function, print its result, then its log tail and REPORT figures."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from lambdad.client.errors import EXIT_FAILED, EXIT_USAGE, CliError
from lambdad.client.session import connect, connection_parser

_PLATFORM_LINES = ("START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START ")
_REPORT_FIELDS = ("Duration", "Billed Duration", "Memory Size", "Max Memory Used", "Init Duration")


class _IntermixedParser(argparse.ArgumentParser):
    """Lets options come between NAME and PAYLOAD (``invoke fn --async '{}'``), which plain
    argparse refuses once an optional positional has been matched as empty."""

    _inner = False

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "invoke",
        parents=[connection_parser()],
        help="invoke a function and show its result, log tail and duration",
        description="Invoke a function synchronously (the result on stdout; its log tail, duration, "
        "billed duration and memory on stderr; exit status 1 on a function error), or with --async.",
    )
    parser.add_argument("name", metavar="NAME", help="function name or ARN")
    parser.add_argument("payload", metavar="PAYLOAD", nargs="?", help="JSON event (default {})")
    parser.add_argument("--file", type=Path, metavar="F", help="read the JSON event from F ('-': stdin)")
    parser.add_argument(
        "--async", dest="is_async", action="store_true", help="queue it (InvocationType Event)"
    )
    parser.add_argument("--qualifier", help="version or alias to invoke")
    parser.set_defaults(run=run)
    parser.__class__ = _IntermixedParser


def read_payload(text: str | None, file: Path | None) -> bytes:
    """The event's bytes, checked to be JSON here so the mistake is explained locally."""
    if text is not None and file is not None:
        raise CliError("give the event as PAYLOAD or with --file, not both", EXIT_USAGE)
    if file is not None:
        try:
            data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {file}: {exc.strerror}", EXIT_USAGE) from exc
    else:
        data = (text if text is not None else "{}").encode()
    try:
        json.loads(data)
    except ValueError as exc:
        raise CliError(
            f'the event is not valid JSON ({exc}); e.g. \'{{"key": "value"}}\'', EXIT_USAGE
        ) from exc
    return data


def pretty(body: bytes) -> str:
    """JSON indented for reading; anything else as text."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode(errors="replace")


def parse_report(line: str) -> dict[str, str]:
    """``REPORT RequestId: …\tDuration: 1.20 ms\t…`` as {"Duration": "1.20 ms", …}."""
    fields = (part.partition(": ") for part in line.strip().split("\t"))
    return {key: value for key, sep, value in fields if sep}


def summary(report: dict[str, str]) -> str:
    parts = [f"{key}: {report[key]}" for key in _REPORT_FIELDS if key in report]
    return "  ".join(parts)


def split_log(tail: str) -> tuple[list[str], dict[str, str]]:
    """The function's own lines, and the REPORT line's fields."""
    lines, report = [], {}
    for line in tail.splitlines():
        if line.startswith("REPORT RequestId:"):
            report = parse_report(line)
        elif not line.startswith(_PLATFORM_LINES):
            lines.append(line)
    return lines, report


def show_error(body: bytes, kind: str) -> None:
    try:
        error: Any = json.loads(body)
    except ValueError:
        error = None
    if isinstance(error, dict) and "errorMessage" in error:
        print(
            f"function error ({kind}): {error.get('errorType', 'Error')}: {error['errorMessage']}",
            file=sys.stderr,
        )
    else:
        print(f"function error ({kind})", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    payload = read_payload(args.payload, args.file)
    lam = connect(args).client("lambda")
    extra = {"Qualifier": args.qualifier} if args.qualifier else {}
    if args.is_async:
        answer = lam.invoke(FunctionName=args.name, Payload=payload, InvocationType="Event", **extra)
        request_id = answer["ResponseMetadata"]["RequestId"]
        print(
            f"queued (status {answer['StatusCode']}); see its output with `lambdad logs {args.name}`",
            file=sys.stderr,
        )
        print(request_id)
        return 0
    answer = lam.invoke(FunctionName=args.name, Payload=payload, LogType="Tail", **extra)
    body = answer["Payload"].read()
    print(pretty(body), flush=True)
    lines, report = split_log(base64.b64decode(answer.get("LogResult", "")).decode(errors="replace"))
    for line in lines:
        print(line, file=sys.stderr)
    if report:
        print(summary(report), file=sys.stderr)
    if "FunctionError" in answer:
        show_error(body, answer["FunctionError"])
        return EXIT_FAILED
    return 0
