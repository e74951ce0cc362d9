"""The Celery app the suite's workers run, through the AMQP server under test.

Configured from the environment (conftest.py sets these for its workers):
  AMQP_URL            broker URL (default amqp://guest:guest@127.0.0.1:5672//)
  CELERY_TEST_QUEUE   default queue, unique per test run
"""
import os
import time

from celery import Celery

app = Celery(
    "ringmq_suite",
    broker=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend="rpc://",
)
app.conf.update(
    task_default_queue=os.environ.get("CELERY_TEST_QUEUE", "celery"),
    broker_connection_retry_on_startup=True,
    result_expires=300,
    worker_hijack_root_logger=False,
)


@app.task
def add(x, y):
    return x + y


@app.task
def fail(text):
    raise ValueError(text)


@app.task(bind=True, max_retries=5)
def flaky(self, failures):
    """Fails `failures` times (retrying each time), then returns the attempt count."""
    if self.request.retries < failures:
        raise self.retry(countdown=0.1)
    return self.request.retries + 1


@app.task(bind=True, acks_late=True)
def late(self, marker, seconds):
    """Acked only when done: writes `marker` (the worker's hostname) when it
    starts, then sleeps `seconds` on a first delivery, so a test can kill the
    worker mid-task; a redelivery returns at once."""
    redelivered = bool(self.request.delivery_info.get("redelivered"))
    with open(marker, "a") as f:
        f.write(f"{self.request.hostname} {os.getpid()} {redelivered}\n")
    if not redelivered:
        time.sleep(seconds)
    return {"hostname": self.request.hostname, "redelivered": redelivered}
