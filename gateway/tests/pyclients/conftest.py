"""Fixtures for the aio-pika (on aiormq) and py-amqp suites.

These are the clients behind aio-pika applications and behind kombu and Celery;
the tests pin down what RabbitMQ 3.10 does, so they run unchanged against any
RabbitMQ-compatible broker:

  AMQP_URL   the server under test (default amqp://guest:guest@127.0.0.1:$AMQP_PORT/,
             AMQP_PORT defaulting to 5672)

Names carry a per-run suffix, so the suite can run against a shared server.
aio-pika tests are plain functions that run one coroutine with asyncio.run.
"""
import asyncio
import functools
import os
import urllib.parse
import uuid

import pytest

PORT = os.environ.get("AMQP_PORT", "5672")
AMQP_URL = os.environ.get("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{PORT}/")
_url = urllib.parse.urlparse(AMQP_URL)
AMQP_HOST = f"{_url.hostname}:{_url.port or 5672}"
RUN = uuid.uuid4().hex[:8]


def name(stem):
    """A queue or exchange name unique to this run."""
    return f"{stem}-{RUN}-{uuid.uuid4().hex[:6]}"


def run_async(test):
    """Runs an `async def` test body with asyncio.run (no pytest plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 20))

    return wrapper


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(30))
