"""Fixtures for the Celery suite: workers as real `celery worker` processes.

  AMQP_URL   the server under test (default amqp://guest:guest@127.0.0.1:$AMQP_PORT//,
             AMQP_PORT defaulting to 5672)

The queues are named per run, so the suite can run against a shared server.
"""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = uuid.uuid4().hex[:8]
os.environ.setdefault(
    "AMQP_URL", f"amqp://guest:guest@127.0.0.1:{os.environ.get('AMQP_PORT', '5672')}//"
)
os.environ["CELERY_TEST_QUEUE"] = f"celery-suite-{RUN}"
sys.path.insert(0, HERE)

from tasks import app  # noqa: E402  (after the environment is set)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


class Worker:
    """A `celery worker` process (solo pool, so kill -9 stops the task too)."""

    def __init__(self, name, queue, log_dir):
        self.name = f"{name}-{RUN}@localhost"
        self.log = os.path.join(log_dir, f"{name}.log")
        cmd = [
            sys.executable, "-m", "celery", "-A", "tasks", "worker",
            "--pool=solo", "--concurrency=1", "-n", self.name, "-Q", queue,
            "--without-mingle", "--loglevel=INFO", f"--logfile={self.log}",
        ]
        self.proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if "ready." in self.tail():
                return self
            time.sleep(0.1)
        pytest.fail(f"worker {self.name} not ready within {timeout}s:\n{self.tail()}")

    def tail(self, n=40):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def start_worker(tmp_path):
    """start_worker(name, queue=default) -> a ready Worker; all stopped at teardown."""
    started = []

    def start(name, queue=None):
        w = Worker(name, queue or app.conf.task_default_queue, str(tmp_path))
        started.append(w)
        return w.wait_ready()

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """One worker on the default queue, shared by a module's tests."""
    w = Worker("main", app.conf.task_default_queue, str(tmp_path_factory.mktemp("worker")))
    try:
        yield w.wait_ready()
    finally:
        w.stop()
        # The queues are per run: leave nothing behind on a shared server.
        with app.connection_for_write() as conn:
            ch = conn.default_channel
            try:
                ch.queue_delete(app.conf.task_default_queue)
            except Exception:
                pass
