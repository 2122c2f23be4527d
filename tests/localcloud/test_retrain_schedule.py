"""The EventBridge schedule expression, read the way EventBridge reads it, for the local scheduler."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from localcloud.schedule import InvalidSchedule, RetrainScheduler, next_times, to_croniter
from screening import resources
from screening.config import Settings

SUNDAY_EVENING = datetime(2026, 11, 22, 21, 0, tzinfo=timezone.utc)  # a Sunday


def test_the_one_definition_is_what_settings_and_the_scheduler_use():
    assert Settings().retrain_schedule == resources.RETRAIN_SCHEDULE
    assert Settings.from_env({"RETRAIN_SCHEDULE": "rate(5 minutes)"}).retrain_schedule == "rate(5 minutes)"


@pytest.mark.parametrize("expression,expected", [
    ("cron(0 3 ? * SUN *)", datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)),
    ("cron(0 3 ? * 1 *)", datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)),  # EventBridge: 1 = Sunday
    ("cron(30 6 ? * 2-6 *)", datetime(2026, 11, 23, 6, 30, tzinfo=timezone.utc)),  # Mon-Fri
    ("cron(0 12 1 * ? *)", datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)),
    ("cron(0/15 * * * ? *)", datetime(2026, 11, 22, 21, 15, tzinfo=timezone.utc)),
    ("rate(2 hours)", datetime(2026, 11, 22, 23, 0, tzinfo=timezone.utc)),
])
def test_next_firing_time(expression, expected):
    assert next_times(expression, SUNDAY_EVENING)[0] == expected


@pytest.mark.parametrize("expression", ["0 3 * * 0", "cron(0 3 * *)", "cron(99 3 ? * SUN *)", "rate(0 hours)",
                                        "rate(1 fortnight)"])
def test_invalid_expressions_fail_at_start(expression):
    with pytest.raises(InvalidSchedule):
        RetrainScheduler(expression, lambda: None)


def test_day_of_week_numbers_shift_to_cron():
    assert to_croniter("cron(0 3 ? * 1,7 *)") == "0 3 * * 0,6"


def test_the_scheduler_fires_once_per_due_time_and_survives_a_failing_start():
    start = datetime(2026, 11, 29, 2, 59, 59, 700000, tzinfo=timezone.utc)
    offset = start - datetime.now(timezone.utc)
    calls, fired = [], threading.Event()

    def fire():
        calls.append(datetime.now(timezone.utc) + offset)
        fired.set()
        raise RuntimeError("409: a job runs")  # logged, the scheduler goes on

    scheduler = RetrainScheduler(resources.RETRAIN_SCHEDULE, fire,
                                 clock=lambda: datetime.now(timezone.utc) + offset).start()
    try:
        assert fired.wait(5)
    finally:
        scheduler.stop()
    assert len(calls) == 1 and calls[0] >= datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)
    assert calls[0] - datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc) < timedelta(seconds=2)
