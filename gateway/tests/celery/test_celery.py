"""Celery through the AMQP server under test: real `celery worker` processes,
the `rpc://` result backend, retries, groups and chains, acks_late with the
worker killed mid-task, and the remote-control `inspect ping`."""
import os
import subprocess
import sys
import time
import uuid

import pytest
from celery import chain, group

from conftest import HERE
from tasks import add, app, fail, flaky, late


def test_round_trip(worker):
    assert add.delay(2, 3).get(timeout=10) == 5


def test_many_results_over_one_reply_queue(worker):
    results = [add.delay(i, i) for i in range(50)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(50)]


def test_countdown(worker):
    start = time.monotonic()
    assert add.apply_async((1, 1), countdown=1).get(timeout=10) == 2
    assert time.monotonic() - start >= 0.9


def test_failure_raises_in_the_caller(worker):
    with pytest.raises(ValueError, match="boom"):
        fail.delay("boom").get(timeout=10)


def test_retries(worker):
    assert flaky.delay(3).get(timeout=20) == 4


def test_group(worker):
    result = group(add.s(i, 10) for i in range(10))()
    assert result.get(timeout=20) == [i + 10 for i in range(10)]


def test_chain(worker):
    assert chain(add.s(1, 2), add.s(3), add.s(4))().get(timeout=20) == 10


def test_inspect_ping(worker):
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", "inspect", "ping",
         "-d", worker.name, "--timeout", "5"],
        cwd=HERE, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pong" in out.stdout, out.stdout
    # The same through the API.
    replies = app.control.ping(destination=[worker.name], timeout=5)
    assert replies == [{worker.name: {"ok": "pong"}}]


def test_acks_late_task_is_redelivered_after_kill_9(start_worker, tmp_path):
    queue = f"late-{uuid.uuid4().hex[:8]}"
    marker = str(tmp_path / "started")
    first = start_worker("first", queue)
    result = late.apply_async((marker, 60), queue=queue)
    deadline = time.monotonic() + 15
    while not (os.path.exists(marker) and open(marker).read()):
        assert time.monotonic() < deadline, "the task did not start:\n" + first.tail()
        time.sleep(0.05)
    first.kill9()  # mid-task: the delivery was never acked
    second = start_worker("second", queue)
    assert result.get(timeout=30) == {"hostname": second.name, "redelivered": True}
    runs = open(marker).read().split("\n")[:-1]
    assert [r.split()[0] for r in runs] == [first.name, second.name]
    assert [r.split()[2] for r in runs] == ["False", "True"]
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
