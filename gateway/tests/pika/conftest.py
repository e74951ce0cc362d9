"""Shared fixtures for the pika behaviour suite.

The suite pins down what real RabbitMQ (3.10) does, so it can be run unchanged
against any RabbitMQ-compatible broker. Configuration comes from env vars:

  AMQP_HOST           broker host (default 127.0.0.1)
  AMQP_PORT           broker port (default 5672)
  BROKER_RESTART_CMD  optional shell command that restarts the broker on the
                      same port keeping its data; returns when it is ready.
                      Tests that need a restart are skipped when it is unset.
  AMQP_TEST_TIMEOUT   per-test timeout in seconds (default 30; needs pytest-timeout)

User guest/guest, vhost "/".
"""
import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pika
import pika.exceptions
import pytest

AMQP_HOST = os.environ.get("AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("AMQP_PORT", "5672"))
AMQP_USER = "guest"
AMQP_PASSWORD = "guest"
AMQP_VHOST = "/"
TEST_TIMEOUT = float(os.environ.get("AMQP_TEST_TIMEOUT", "30"))
RESTART_TIMEOUT = float(os.environ.get("BROKER_RESTART_TIMEOUT", "120"))

# Default deadline used by the polling helpers; a broken broker fails the test
# after this long instead of hanging it.
DEADLINE = 5.0


def mgmt_api(method, path, body=None):
    """A management API call as guest (MGMT_PORT); (status, JSON or None)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{os.environ['MGMT_PORT']}/api{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, None


def make_params(**overrides):
    kw = dict(
        host=AMQP_HOST,
        port=AMQP_PORT,
        virtual_host=AMQP_VHOST,
        credentials=pika.PlainCredentials(AMQP_USER, AMQP_PASSWORD),
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=10,
        blocked_connection_timeout=10,
    )
    kw.update(overrides)
    return pika.ConnectionParameters(**kw)


# --------------------------------------------------------------------------
# pytest plumbing: a default timeout for every test, so nothing ever hangs.
# --------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")
    config.addinivalue_line("markers", "restart: test restarts the broker (needs BROKER_RESTART_CMD)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


# --------------------------------------------------------------------------
# Connection fixtures
# --------------------------------------------------------------------------
@pytest.fixture
def params():
    """pika.ConnectionParameters for the broker under test."""
    return make_params()


@pytest.fixture(scope="session")
def params_factory():
    """Session-scoped: params_factory(**overrides) -> pika.ConnectionParameters
    (for module-scoped fixtures that cannot use `params`)."""
    return make_params


def _safe_close(connection):
    try:
        if connection.is_open:
            connection.close()
    except Exception:
        pass


@pytest.fixture
def new_conn():
    """Factory: new_conn(**param_overrides) -> BlockingConnection, closed at teardown."""
    opened = []

    def factory(**overrides):
        c = pika.BlockingConnection(make_params(**overrides))
        opened.append(c)
        return c

    yield factory
    for c in reversed(opened):
        _safe_close(c)


@pytest.fixture
def conn(new_conn):
    """A BlockingConnection to the broker, closed at teardown."""
    return new_conn()


def _cleanup_names(names):
    """Delete every name as both a queue and an exchange; ignore all errors."""
    if not names:
        return
    try:
        c = pika.BlockingConnection(make_params(stack_timeout=5))
    except Exception:
        return
    try:
        ch = None
        for name in names:
            for op in ("queue_delete", "exchange_delete"):
                try:
                    if ch is None or not ch.is_open:
                        ch = c.channel()
                    getattr(ch, op)(name)
                except Exception:
                    if not c.is_open:
                        return
    finally:
        _safe_close(c)


@pytest.fixture
def unique(request):
    """unique(prefix='t') -> a fresh name, e.g. 't-3f2a9c1b7d0e'.

    Every name handed out is deleted (as a queue and as an exchange) at
    teardown, so tests can run repeatedly against a long-lived broker.
    """
    names = []

    def make(prefix="t"):
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    yield make
    _cleanup_names(names)


# --------------------------------------------------------------------------
# Helpers with deadlines (exposed as fixtures so tests need no imports)
# --------------------------------------------------------------------------
def _get_one(channel, queue, auto_ack=True, timeout=DEADLINE):
    """basic_get polling until a message arrives; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            pytest.fail(f"no message on {queue!r} within {timeout}s")
        channel.connection.sleep(0.02)


def _drain(channel, queue, auto_ack=True, settle=0.2):
    """basic_get until the queue stays empty for `settle` seconds."""
    got = []
    quiet_since = time.monotonic()
    hard_deadline = time.monotonic() + DEADLINE * 2
    while time.monotonic() < hard_deadline:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            if time.monotonic() - quiet_since >= settle:
                return got
            channel.connection.sleep(0.02)
            continue
        got.append((method, props, body))
        quiet_since = time.monotonic()
    return got


def _wait_count(channel, queue, expected, timeout=DEADLINE):
    """Poll queue_declare(passive=True) until message_count == expected.

    Polling is needed even on the publishing channel: RabbitMQ answers the
    passive declare's message_count out of order with respect to preceding
    unconfirmed publishes (the queue process prioritises the stat call), so a
    count taken right after basic_publish can still miss the message."""
    deadline = time.monotonic() + timeout
    while True:
        count = channel.queue_declare(queue, passive=True).method.message_count
        if count == expected:
            return count
        if time.monotonic() > deadline:
            pytest.fail(f"queue {queue!r} has {count} messages, expected {expected}")
        channel.connection.sleep(0.02)


def _pump_until(predicate, *connections, timeout=DEADLINE, step=0.02):
    """Run I/O on the given BlockingConnections until predicate() is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s")
        for c in connections:
            c.process_data_events(time_limit=step)


def _pump_for(seconds, *connections, step=0.02):
    """Run I/O on the given connections for `seconds` (to prove nothing more arrives)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in connections:
            c.process_data_events(time_limit=step)


def _consume(connection, channel, queue, count, auto_ack=True, timeout=DEADLINE):
    """Tutorial-style consume: basic_consume + start_consuming, stopped from the
    callback after `count` messages or by a deadline timer. Returns the list of
    (method, properties, body)."""
    received = []

    def callback(ch, method, properties, body):
        received.append((method, properties, body))
        if not auto_ack:
            ch.basic_ack(delivery_tag=method.delivery_tag)
        if len(received) >= count:
            ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=auto_ack)
    timer = connection.call_later(timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.remove_timeout(timer)
    return received


@pytest.fixture
def get_one():
    return _get_one


@pytest.fixture
def drain():
    return _drain


@pytest.fixture
def wait_count():
    return _wait_count


@pytest.fixture
def pump_until():
    return _pump_until


@pytest.fixture
def pump_for():
    return _pump_for


@pytest.fixture
def consume():
    return _consume


# --------------------------------------------------------------------------
# Broker restart
# --------------------------------------------------------------------------
def _wait_broker_ready(timeout=60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=1):
                pass
            c = pika.BlockingConnection(make_params())
            c.close()
            return
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.2)
    raise RuntimeError(f"broker not ready {timeout}s after restart: {last!r}")


def _restart_broker():
    cmd = os.environ.get("BROKER_RESTART_CMD")
    proc = subprocess.run(cmd, shell=True, timeout=RESTART_TIMEOUT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"BROKER_RESTART_CMD failed ({proc.returncode}):\n"
                           + proc.stdout.decode(errors="replace"))
    _wait_broker_ready()


@pytest.fixture(scope="module")
def restart_broker():
    """Returns a function that restarts the broker; skips when BROKER_RESTART_CMD is unset."""
    if not os.environ.get("BROKER_RESTART_CMD"):
        pytest.skip("BROKER_RESTART_CMD not set")
    return _restart_broker
