"""The outbox's parts on their own: retry policy, breaker, and what the queue lets go (real SQLite files)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestra.integrations.outbox import messages
from orchestra.integrations.outbox.breaker import Breaker
from orchestra.integrations.outbox.model import Message, NewMessage, Outcome, State, Verdict
from orchestra.integrations.outbox.retry_policy import RetryPolicy, parse_retry_after


def test_retry_policy_follows_its_schedule_and_stops_at_max_attempts() -> None:
    capped = RetryPolicy((1.0, 2.0, 4.0), max_attempts=3)
    assert [capped.next_delay(n) for n in (1, 2, 3)] == [1.0, 2.0, None]  # three tries in all
    forever = RetryPolicy((1.0, 2.0))
    assert [forever.next_delay(n) for n in (1, 2, 3, 50)] == [1.0, 2.0, 2.0, 2.0]  # the last one repeats
    assert forever.next_delay(0) is None


def test_retry_policy_jitters_and_honours_retry_after_up_to_its_cap() -> None:
    jittered = RetryPolicy((10.0,), jitter=(0.5, 1.0))
    assert all(5.0 <= jittered.next_delay(1) <= 10.0 for _ in range(100))
    policy = RetryPolicy((1.0,), retry_after_cap_s=30.0)
    assert policy.next_delay(1, retry_after_s=7.0) == 7.0
    assert policy.next_delay(1, retry_after_s=0.1) == 1.0  # never sooner than the schedule
    assert policy.next_delay(1, retry_after_s=3600.0) == 30.0
    assert parse_retry_after("12") == 12.0 and parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert 0 < parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 61


def test_breaker_opens_for_a_cool_down_per_destination() -> None:
    breaker = Breaker(cooldown_s=30.0)
    assert not breaker.is_open("a") and breaker.retry_at("a") is None
    before = time.time()
    breaker.failed("a", "connection refused")
    assert breaker.is_open("a") and not breaker.is_open("b")
    assert before + 30.0 <= breaker.retry_at("a") <= time.time() + 30.0
    assert breaker.reason("a") == "connection refused"
    breaker.try_now("a")  # one last attempt may go now; it stays open until something is delivered
    assert breaker.retry_at("a") <= time.time() and breaker.is_open("a")
    breaker.succeeded("a")
    assert not breaker.is_open("a") and breaker.reason("a") is None


def _box(tmp_path: Path) -> messages.Outbox:
    return messages.Outbox("unit", tmp_path)


def _enqueue(box: messages.Outbox, *lanes: str) -> list[int]:
    conn = box.conn()
    messages.add(conn, [NewMessage(lane, "dest", "ref", "subject", "kind", b"x") for lane in lanes])
    return [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]


def _due(box: messages.Outbox, *, ordered: bool, busy: tuple[str, ...] = ()) -> list[int]:
    return [row["id"] for row in messages.due(box.conn(), time.time(), set(busy), ordered=ordered)]


def test_an_ordered_lane_waits_for_its_oldest_message_an_unordered_one_does_not(tmp_path: Path) -> None:
    box = _box(tmp_path)
    a1, a2, b1 = _enqueue(box, "a", "a", "b")
    assert _due(box, ordered=True) == [a1, b1]  # one per lane, oldest first
    assert _due(box, ordered=True, busy=("a",)) == [b1]
    box.conn().execute("UPDATE messages SET next_at = ? WHERE id = ?", (time.time() + 60, a1))  # a1 backs off
    assert _due(box, ordered=True) == [b1]  # a2 never overtakes a1
    assert _due(box, ordered=False) == [a2, b1]  # independent messages: a2 goes meanwhile


def test_a_claim_is_taken_once_and_a_dead_senders_claim_is_taken_over(tmp_path: Path) -> None:
    box = _box(tmp_path)
    [first] = _enqueue(box, "a")
    row = messages.due(box.conn(), time.time(), set(), ordered=True)[0]
    claimed = messages.claim(box.conn(), row, lease_s=60)
    assert claimed is not None and claimed.attempt == 1
    assert messages.claim(box.conn(), row, lease_s=60) is None  # the same row, seen before the claim
    assert _due(box, ordered=True) == []  # in flight here, leased
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    box.conn().execute("UPDATE messages SET claimed_pid = ? WHERE id = ?", (gone.pid, first))
    assert _due(box, ordered=True) == [first]  # its sender is gone: no need to wait for the lease


@pytest.mark.parametrize("verdict, delay, state", [
    (Verdict.DELIVERED, None, State.DELIVERED), (Verdict.RETRY, 5.0, State.PENDING),
    (Verdict.RETRY, None, State.DEAD), (Verdict.DEAD, None, State.DEAD), (Verdict.DISABLED, None, State.DISABLED),
])
def test_finish_moves_a_message_on(tmp_path: Path, verdict: Verdict, delay: float | None, state: State) -> None:
    box = _box(tmp_path)
    _enqueue(box, "a")
    claimed = messages.claim(box.conn(), messages.due(box.conn(), time.time(), set(), ordered=False)[0], 60)
    assert isinstance(claimed, Message)
    recorded = []
    got = messages.finish(box.conn(), claimed, Outcome(verdict, 503, "why"), delay,
                          lambda conn, message, outcome, new: recorded.append((message.id, new)))
    assert got == state and recorded == [(claimed.id, state)]
    row = box.conn().execute("SELECT state, next_at, claimed_pid, last_status, last_error FROM messages").fetchone()
    assert (row["state"], row["claimed_pid"], row["last_status"], row["last_error"]) == (state, None, 503, "why")
    assert (row["next_at"] is not None) == (state == State.PENDING)
    assert messages.pending_count(box.conn()) == (1 if state == State.PENDING else 0)
