"""The retraining schedule in the local cloud: the EventBridge expression the CDK rule uses
(resources.RETRAIN_SCHEDULE, overridable by RETRAIN_SCHEDULE), run by croniter.

EventBridge syntax differs from classic cron: six fields (minutes hours
day-of-month month day-of-week year), `?` for "any" in one of the day fields,
and day-of-week numbered 1-7 from Sunday (cron: 0-6). `rate(N unit)` is
accepted too. `to_croniter` translates; `RetrainScheduler` fires a callback at
each time the expression names, in a daemon thread.

Entry point: `RetrainScheduler(expression, fire).start()` ... `.stop()`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from croniter import croniter

log = logging.getLogger("localcloud.schedule")
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class InvalidSchedule(ValueError):
    pass


def _day_of_week(field: str) -> str:
    """EventBridge 1-7 (SUN-SAT) -> cron 0-6; names, '*', '?', L and # stay as they are."""
    return re.sub(r"\d+", lambda m: str((int(m.group()) - 1) % 7) if m.group() else "", field.replace("?", "*"))


def to_croniter(expression: str) -> str:
    """cron(m h dom mon dow year) -> the five-field expression croniter reads."""
    match = re.fullmatch(r"\s*cron\((.+)\)\s*", expression)
    if not match:
        raise InvalidSchedule(f"not an EventBridge cron expression: {expression!r}")
    parts = match.group(1).split()
    if len(parts) != 6:
        raise InvalidSchedule(f"EventBridge cron takes six fields, got {len(parts)}: {expression!r}")
    minute, hour, day, month, weekday, year = parts
    if year not in ("*", "?"):
        log.warning("the year field %s is ignored locally", year)
    # '#' (nth weekday) keeps its number after the '#'.
    if "#" in weekday:
        dow, nth = weekday.split("#", 1)
        weekday = f"{_day_of_week(dow)}#{nth}"
    else:
        weekday = _day_of_week(weekday)
    cron = f"{minute} {hour} {day.replace('?', '*')} {month} {weekday}"
    if not croniter.is_valid(cron):
        raise InvalidSchedule(f"invalid schedule {expression!r} (as cron: {cron!r})")
    return cron


def next_times(expression: str, start: datetime, count: int = 1) -> list[datetime]:
    """The next `count` firing times after `start` (UTC), for cron() and rate() alike."""
    rate = re.fullmatch(r"\s*rate\((\d+)\s+(\w+)\)\s*", expression)
    if rate:
        unit = RATE_UNITS.get(rate.group(2))
        if unit is None or int(rate.group(1)) < 1:
            raise InvalidSchedule(f"invalid rate expression {expression!r}")
        step = timedelta(seconds=int(rate.group(1)) * unit)
        return [start + step * (i + 1) for i in range(count)]
    iterator = croniter(to_croniter(expression), start)
    return [iterator.get_next(datetime) for _ in range(count)]


class RetrainScheduler:
    """Calls `fire()` at every time the expression names (UTC) until stopped; a failing call is logged."""

    def __init__(self, expression: str, fire: Callable[[], object],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        next_times(expression, clock())  # fail at start, not at the first firing
        self.expression, self.fire, self.clock = expression, fire, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def start(self) -> "RetrainScheduler":
        self._thread = threading.Thread(target=self._loop, name="retrain-schedule", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        due = next_times(self.expression, self.clock())[0]
        while not self._stop.is_set():
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                self._stop.wait(min(wait, 30.0))
                continue
            try:
                self.fired += 1
                log.info("retrain schedule fired (%s)", self.expression)
                self.fire()
            except Exception:  # noqa: BLE001 - e.g. 409: a job is already running
                log.exception("the scheduled retrain did not start")
            due = next_times(self.expression, max(self.clock(), due))[0]
            time.sleep(0)  # let stop() win a race with a schedule that fires every second


def start_local_schedule(s3, settings) -> RetrainScheduler:
    """The local cloud's wiring: at each time of settings.retrain_schedule, start a job for the
    default condition with the job's default hyperparameters, as the EventBridge rule does."""
    from localcloud.training_jobs import LocalTrainingJobs
    from screening.training_contract import DEFAULT_CONDITION

    jobs = LocalTrainingJobs(s3, settings)
    return RetrainScheduler(settings.retrain_schedule, lambda: jobs.start(DEFAULT_CONDITION, {})).start()
