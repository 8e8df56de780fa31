"""The EventBridge Scheduler–compatible API on the real server: CRUD, errors, firing once, restarts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import ROLE, ServerProcess, make_zip

HANDLER = make_zip(
    {"handler.py": "import json\ndef handler(event, context):\n    print('EVENT', json.dumps(event))\n"}
)


def at_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return f"at({moment.strftime('%Y-%m-%dT%H:%M:%S')})"


def events(server: ServerProcess, function: str) -> list[Any]:
    logs = server.client("logs")
    try:
        found = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}", filterPattern='"EVENT"')
    except ClientError:
        return []
    return [
        json.loads(e["message"].split("EVENT ", 1)[1]) for e in found["events"] if "EVENT " in e["message"]
    ]


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return value


def function(server: ServerProcess) -> str:
    lam = server.client("lambda")
    name = f"sch-{uuid.uuid4().hex[:10]}"
    lam.create_function(**create_kwargs(name, HANDLER))
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    arn: str = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return arn


def target(arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"Arn": arn, "RoleArn": ROLE, "Input": json.dumps(payload)}


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_crud_and_errors(server: ServerProcess) -> None:
    scheduler = server.client("scheduler")
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:whatever-{uuid.uuid4().hex[:6]}"
    name = f"s-{uuid.uuid4().hex[:8]}"
    off = {"Mode": "OFF"}
    created = scheduler.create_schedule(
        Name=name, ScheduleExpression="cron(0 12 ? * MON-FRI *)", ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow=off, Target=target(arn, {"a": 1}),
    )  # fmt: skip
    assert created["ScheduleArn"] == f"arn:aws:scheduler:us-east-1:000000000000:schedule/default/{name}"
    got = scheduler.get_schedule(Name=name)
    assert got["State"] == "ENABLED" and got["GroupName"] == "default" and got["Target"]["Arn"] == arn
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris" and isinstance(got["CreationDate"], datetime)
    code, message = error_of(
        scheduler.create_schedule, Name=name, ScheduleExpression="rate(1 hour)", FlexibleTimeWindow=off,
        Target=target(arn, {}),
    )  # fmt: skip
    assert (code, message) == ("ConflictException", f"Schedule {name} already exists.")
    for bad in ("cron(0 12 * * * *)", "rate(0 minutes)", "at(2030-02-30T00:00:00)"):
        code, message = error_of(
            scheduler.create_schedule, Name=name + "x", ScheduleExpression=bad, FlexibleTimeWindow=off,
            Target=target(arn, {}),
        )  # fmt: skip
        assert (code, message) == ("ValidationException", f"Invalid Schedule Expression {bad}.")
    assert error_of(scheduler.get_schedule, Name="nope")[0] == "ResourceNotFoundException"
    scheduler.update_schedule(
        Name=name, ScheduleExpression="rate(2 hours)", State="DISABLED", FlexibleTimeWindow=off,
        Target=target(arn, {"b": 2}),
    )  # fmt: skip
    got = scheduler.get_schedule(Name=name)
    assert got["State"] == "DISABLED" and got["ScheduleExpression"] == "rate(2 hours)"
    listed = scheduler.list_schedules(NamePrefix=name)["Schedules"]
    assert [s["Name"] for s in listed] == [name]
    group = f"g-{uuid.uuid4().hex[:6]}"
    scheduler.create_schedule_group(Name=group)
    assert scheduler.get_schedule_group(Name=group)["State"] == "ACTIVE"
    groups = {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}
    assert {"default", group} <= groups
    scheduler.delete_schedule_group(Name=group)
    scheduler.delete_schedule(Name=name)
    assert error_of(scheduler.delete_schedule, Name=name)[0] == "ResourceNotFoundException"
    cli = server.aws_cli("scheduler", "list-schedules", "--name-prefix", name)
    assert json.loads(cli.stdout)["Schedules"] == []


def test_one_time_schedule_fires_once_with_its_input(server: ServerProcess) -> None:
    scheduler = server.client("scheduler")
    fn = function(server)
    name = f"once-{uuid.uuid4().hex[:8]}"
    payload = {"hello": "world", "n": [1, 2]}
    scheduler.create_schedule(
        Name=name, ScheduleExpression=at_in(2), FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(fn, payload), ActionAfterCompletion="DELETE",
    )  # fmt: skip
    fn_name = fn.rsplit(":", 1)[1]
    assert wait_for(lambda: events(server, fn_name), 15) == [payload]
    assert wait_for(lambda: not scheduler.list_schedules(NamePrefix=name)["Schedules"], 5)
    time.sleep(1.5)
    assert events(server, fn_name) == [payload]


def test_restart_neither_misses_nor_repeats(new_server: Callable[..., ServerProcess]) -> None:
    first = new_server()
    fn = function(first)
    fn_name = fn.rsplit(":", 1)[1]
    scheduler = first.client("scheduler")
    off = {"Mode": "OFF"}
    scheduler.create_schedule(Name="early", ScheduleExpression=at_in(1), FlexibleTimeWindow=off,
                              Target=target(fn, {"which": "early"}))  # fmt: skip
    assert wait_for(lambda: events(first, fn_name), 15) == [{"which": "early"}]
    # Due while the server is down: fires after the restart (within the grace window), once.
    scheduler.create_schedule(Name="during", ScheduleExpression=at_in(3), FlexibleTimeWindow=off,
                              Target=target(fn, {"which": "during"}))  # fmt: skip
    assert first.stop() == 0
    time.sleep(3.5)
    second = new_server(first.data_dir)
    assert wait_for(lambda: len(events(second, fn_name)) >= 2, 15)
    time.sleep(1.5)
    fired = sorted(e["which"] for e in events(second, fn_name))
    assert fired == ["during", "early"]
    state = second.client("scheduler").get_schedule(Name="early")
    assert state["State"] == "ENABLED"  # ActionAfterCompletion NONE keeps it
