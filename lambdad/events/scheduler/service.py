"""EventBridge Scheduler's API: schedules and schedule groups, stored in ``ScheduleStore``.

Every write recomputes the schedule's next occurrence in the same transaction and wakes the firing
loop. Targets are Lambda functions and SQS queues of this lambdad.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lambdad.events.scheduler import store as db
from lambdad.events.scheduler.firing import FiringLoop, first_due, jitter, schedule_of
from lambdad.http.errors import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)

DEFAULT_GROUP = "default"
DEFAULT_PAGE = 100
#: Members the API shows; the document also keeps private keys starting with "_".
_SCHEDULE_FIELDS = ("ActionAfterCompletion", "Description", "EndDate", "FlexibleTimeWindow", "KmsKeyArn",
                    "ScheduleExpression", "ScheduleExpressionTimezone", "StartDate", "State", "Target")  # fmt: skip


class SchedulerService:
    def __init__(
        self, store: db.ScheduleStore, loop: FiringLoop, region: str, account: str,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store = store
        self.loop = loop
        self.region = region
        self.account = account
        self._clock = clock

    def schedule_arn(self, group: str, name: str) -> str:
        return f"arn:aws:scheduler:{self.region}:{self.account}:schedule/{group}/{name}"

    def group_arn(self, name: str) -> str:
        return f"arn:aws:scheduler:{self.region}:{self.account}:schedule-group/{name}"

    # -- schedules ---------------------------------------------------------------------------------

    async def create(self, params: Mapping[str, Any]) -> dict[str, Any]:
        group = params.get("GroupName") or DEFAULT_GROUP
        name = params["Name"]
        now = self._clock()
        doc = self._document(params, group, name, created=now, now=now)

        def create(conn: sqlite3.Connection) -> None:
            self._need_group(conn, group)
            if db.get_schedule(conn, group, name) is not None:
                raise ConflictException(f"Schedule {name} already exists.")
            db.put_schedule(conn, self._row(group, name, doc, now))

        await self.store.run(create)
        self.loop.wake()
        return {"ScheduleArn": doc["Arn"]}

    async def update(self, params: Mapping[str, Any]) -> dict[str, Any]:
        group = params.get("GroupName") or DEFAULT_GROUP
        name = params["Name"]
        now = self._clock()

        def update(conn: sqlite3.Connection) -> str:
            current = self._need_schedule(conn, group, name)
            doc = self._document(params, group, name, created=current.doc["CreationDate"], now=now)
            row = self._row(group, name, doc, now)
            row.last_fired = current.last_fired
            db.put_schedule(conn, row)
            return str(doc["Arn"])

        arn = await self.store.run(update)
        self.loop.wake()
        return {"ScheduleArn": arn}

    async def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        group = params.get("GroupName") or DEFAULT_GROUP
        row = await self.store.run(lambda conn: self._need_schedule(conn, group, params["Name"]))
        return _public(row.doc)

    async def delete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        group = params.get("GroupName") or DEFAULT_GROUP
        name = params["Name"]

        def delete(conn: sqlite3.Connection) -> None:
            self._need_schedule(conn, group, name)
            conn.execute("DELETE FROM schedules WHERE grp = ? AND name = ?", (group, name))

        await self.store.run(delete)
        return {}

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        rows = await self.store.run(db.list_schedules)
        if params.get("GroupName"):
            rows = [r for r in rows if r.group == params["GroupName"]]
        if params.get("NamePrefix"):
            rows = [r for r in rows if r.name.startswith(params["NamePrefix"])]
        if params.get("State"):
            rows = [r for r in rows if r.doc["State"] == params["State"]]
        start = int(params.get("NextToken") or 0)
        limit = params.get("MaxResults") or DEFAULT_PAGE
        out: dict[str, Any] = {"Schedules": [_summary(r.doc) for r in rows[start : start + limit]]}
        if start + limit < len(rows):
            out["NextToken"] = str(start + limit)
        return out

    def _document(
        self, params: Mapping[str, Any], group: str, name: str, created: float, now: float
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {k: params[k] for k in _SCHEDULE_FIELDS if params.get(k) is not None}
        for key in ("StartDate", "EndDate"):
            if key in doc:
                doc[key] = _epoch(doc[key])
        doc.setdefault("State", "ENABLED")
        doc.setdefault("ScheduleExpressionTimezone", "UTC")
        doc.setdefault("ActionAfterCompletion", "NONE")
        doc.update(Name=name, GroupName=group, Arn=self.schedule_arn(group, name))
        doc.update(CreationDate=created, LastModificationDate=now, _Anchor=doc.get("StartDate", now))
        _check(doc)
        return doc

    def _row(self, group: str, name: str, doc: dict[str, Any], now: float) -> db.ScheduleRow:
        due = first_due(doc, now) if doc["State"] == "ENABLED" else None
        fire_at = None if due is None else jitter(doc, due, self.loop.rng)
        return db.ScheduleRow(group, name, doc, due, fire_at)

    def _need_schedule(self, conn: sqlite3.Connection, group: str, name: str) -> db.ScheduleRow:
        row = db.get_schedule(conn, group, name)
        if row is None:
            raise ResourceNotFoundException(f"Schedule {name} does not exist.")
        return row

    def _need_group(self, conn: sqlite3.Connection, group: str) -> None:
        if group != DEFAULT_GROUP and db.get_group(conn, group) is None:
            raise ResourceNotFoundException(f"Schedule group {group} does not exist.")

    # -- schedule groups ---------------------------------------------------------------------------

    async def create_group(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        now = self._clock()

        def create(conn: sqlite3.Connection) -> None:
            if name == DEFAULT_GROUP or db.get_group(conn, name) is not None:
                raise ConflictException(f"Schedule group {name} already exists.")
            conn.execute(
                "INSERT INTO groups (name, created, tags) VALUES (?, ?, ?)",
                (name, now, "[]"),
            )

        await self.store.run(create)
        return {"ScheduleGroupArn": self.group_arn(name)}

    async def get_group(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        created = await self.store.run(lambda conn: self._group_created(conn, name))
        return self._group_doc(name, created)

    async def delete_group(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        if name == DEFAULT_GROUP:
            raise ValidationException("Cannot delete the default schedule group.")

        def delete(conn: sqlite3.Connection) -> None:
            self._group_created(conn, name)
            conn.execute("DELETE FROM schedules WHERE grp = ?", (name,))
            conn.execute("DELETE FROM groups WHERE name = ?", (name,))

        await self.store.run(delete)
        return {}

    async def list_groups(self, params: Mapping[str, Any]) -> dict[str, Any]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            rows = conn.execute("SELECT name, created FROM groups ORDER BY name").fetchall()
            return [(DEFAULT_GROUP, 0.0)] + [(r[0], r[1]) for r in rows]

        groups = await self.store.run(read)
        prefix = params.get("NamePrefix") or ""
        return {"ScheduleGroups": [self._group_doc(n, c) for n, c in groups if n.startswith(prefix)]}

    def _group_created(self, conn: sqlite3.Connection, name: str) -> float:
        if name == DEFAULT_GROUP:
            return 0.0
        found = db.get_group(conn, name)
        if found is None:
            raise ResourceNotFoundException(f"Schedule group {name} does not exist.")
        return found[1]

    def _group_doc(self, name: str, created: float) -> dict[str, Any]:
        return {"Arn": self.group_arn(name), "Name": name, "State": "ACTIVE",
                "CreationDate": created, "LastModificationDate": created}  # fmt: skip


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _check(doc: dict[str, Any]) -> None:
    """Scheduler's own rules beyond the model's constraints."""
    schedule_of(doc)  # raises ValidationException for a malformed expression or time zone
    start, end = doc.get("StartDate"), doc.get("EndDate")
    if start is not None and end is not None and start >= end:
        raise ValidationException("The StartDate must be before the EndDate.")
    window = doc["FlexibleTimeWindow"]
    if window.get("Mode") == "FLEXIBLE" and not window.get("MaximumWindowInMinutes"):
        raise ValidationException("MaximumWindowInMinutes must be provided when the Mode is FLEXIBLE.")
    if window.get("Mode") == "OFF" and window.get("MaximumWindowInMinutes"):
        raise ValidationException("MaximumWindowInMinutes must not be provided when the Mode is OFF.")
    arn = str(doc["Target"]["Arn"])
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] not in ("lambda", "sqs"):
        raise ValidationException(
            f"Invalid target ARN {arn}: lambdad schedules can target Lambda functions and SQS queues."
        )
    dead_letter = (doc["Target"].get("DeadLetterConfig") or {}).get("Arn")
    if dead_letter is not None and str(dead_letter).split(":")[2:3] != ["sqs"]:
        raise ValidationException(f"Invalid DeadLetterConfig ARN {dead_letter}: it must be an SQS queue.")


def _public(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Arn": doc["Arn"],
        "CreationDate": doc["CreationDate"],
        "GroupName": doc["GroupName"],
        "LastModificationDate": doc["LastModificationDate"],
        "Name": doc["Name"],
        "State": doc["State"],
        "Target": {"Arn": doc["Target"]["Arn"]},
    }
