"""Permissions through pika: every AMQP operation with the permission it
needs present (allowed) and absent (403 ACCESS_REFUSED, RabbitMQ's text),
passive declares needing none, topic permissions on routing keys, and a
vhost the user has no permissions in refused at connection.open (530).

Users and permissions are set over the management HTTP API (MGMT_PORT,
guest/guest), which both ringmq and RabbitMQ with its management plugin
serve; the answers here are RabbitMQ 3.10's (run with AMQP_PORT=5673
MGMT_PORT=15672 against the anchor). Skipped without MGMT_PORT.
"""
import os

import pika
import pika.exceptions
import pytest

from conftest import make_params, mgmt_api

MGMT_PORT = os.environ.get("MGMT_PORT")
pytestmark = pytest.mark.skipif(not MGMT_PORT, reason="needs the management API (MGMT_PORT)")

USER = "pm_user"
PASSWORD = "pm_pw"
OK = "^pm\\."  # every resource of these tests starts with "pm."


def api(method, path, body=None):
    return mgmt_api(method, path, body)[0]


def set_permissions(configure=OK, write=OK, read=OK):
    status = api("PUT", f"/permissions/%2F/{USER}", {"configure": configure, "write": write, "read": read})
    assert status in (201, 204), status


def set_topic(exchange, write, read):
    status = api("PUT", f"/topic-permissions/%2F/{USER}", {"exchange": exchange, "write": write, "read": read})
    assert status in (201, 204), status


@pytest.fixture(scope="module", autouse=True)
def user_and_resources():
    assert api("PUT", f"/users/{USER}", {"password": PASSWORD, "tags": ""}) in (201, 204)
    set_permissions()
    admin = pika.BlockingConnection(make_params())
    ch = admin.channel()
    ch.exchange_declare("pm.x", "direct")
    ch.exchange_declare("pm.t", "topic")
    ch.exchange_declare("pm.x2", "fanout")
    ch.queue_declare("pm.q")
    yield
    ch = admin.channel()
    for x in ("pm.x", "pm.t", "pm.x2", "pm.new.x"):
        ch.exchange_delete(x)
    for q in ("pm.q", "pm.new.q", "pm.dlx.q"):
        ch.queue_delete(q)
    admin.close()
    api("DELETE", f"/users/{USER}")


@pytest.fixture(autouse=True)
def full_permissions_again():
    set_permissions()
    api("DELETE", f"/topic-permissions/%2F/{USER}")
    yield


def as_user():
    conn = pika.BlockingConnection(make_params(credentials=pika.PlainCredentials(USER, PASSWORD)))
    return conn, conn.channel()


def refused(text):
    return (403, "ACCESS_REFUSED - " + text)


def q_refused(name):
    return refused(f"access to queue '{name}' in vhost '/' refused for user '{USER}'")


def x_refused(name):
    return refused(f"access to exchange '{name}' in vhost '/' refused for user '{USER}'")


def outcome(op):
    """None when `op(channel)` succeeds, else the channel's close (code, text)."""
    conn, ch = as_user()
    try:
        op(ch)
        # A refused publish closes the channel asynchronously: a round trip
        # after it makes the close arrive.
        ch.queue_declare("pm.q", passive=True)
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return (e.reply_code, e.reply_text)
    finally:
        if conn.is_open:
            conn.close()


def publish(exchange, key):
    return lambda ch: ch.basic_publish(exchange, key, b"x")


def consume(ch):
    ch.basic_consume("pm.q", lambda *a: None, auto_ack=True)


# (name, permissions that allow it, the one taken away, the operation, the
# refusal when taken away)
CASES = [
    ("exchange.declare", "configure", lambda ch: ch.exchange_declare("pm.new.x", "direct"), x_refused("pm.new.x")),
    ("exchange.declare existing", "configure", lambda ch: ch.exchange_declare("pm.x", "direct"), x_refused("pm.x")),
    ("exchange.delete", "configure", lambda ch: ch.exchange_delete("pm.new.x"), x_refused("pm.new.x")),
    ("queue.declare", "configure", lambda ch: ch.queue_declare("pm.new.q"), q_refused("pm.new.q")),
    ("queue.declare existing", "configure", lambda ch: ch.queue_declare("pm.q"), q_refused("pm.q")),
    ("queue.delete", "configure", lambda ch: ch.queue_delete("pm.new.q"), q_refused("pm.new.q")),
    ("queue.purge", "read", lambda ch: ch.queue_purge("pm.q"), q_refused("pm.q")),
    ("basic.get", "read", lambda ch: ch.basic_get("pm.q", auto_ack=True), q_refused("pm.q")),
    ("basic.consume", "read", consume, q_refused("pm.q")),
    ("queue.bind: write on the queue", "write", lambda ch: ch.queue_bind("pm.q", "pm.x", "k"), q_refused("pm.q")),
    ("queue.bind: read on the exchange", "read", lambda ch: ch.queue_bind("pm.q", "pm.x", "k"), x_refused("pm.x")),
    ("queue.unbind: write on the queue", "write", lambda ch: ch.queue_unbind("pm.q", "pm.x", "k"), q_refused("pm.q")),
    ("exchange.bind: write on the destination", "write", lambda ch: ch.exchange_bind("pm.x2", "pm.x", "k"), x_refused("pm.x2")),
    ("exchange.bind: read on the source", "read", lambda ch: ch.exchange_bind("pm.x2", "pm.x", "k"), x_refused("pm.x")),
    ("exchange.unbind", "write", lambda ch: ch.exchange_unbind("pm.x2", "pm.x", "k"), x_refused("pm.x2")),
    ("basic.publish", "write", publish("pm.x", "k"), x_refused("pm.x")),
]


@pytest.mark.parametrize("name,perm,op,refusal", CASES, ids=[c[0] for c in CASES])
def test_allowed_with_the_permission_and_refused_without(name, perm, op, refusal):
    assert outcome(op) is None, name
    set_permissions(**{perm: ""})
    assert outcome(op) == refusal, name


def test_the_default_exchange_is_checked_as_amq_default():
    set_permissions(write="^amq\\.default$|^pm\\.")
    assert outcome(publish("", "pm.q")) is None
    set_permissions(write=OK)
    assert outcome(publish("", "pm.q")) == x_refused("amq.default")


def test_passive_declares_need_no_permission():
    set_permissions(configure="", write="", read="")
    assert outcome(lambda ch: ch.queue_declare("pm.q", passive=True)) is None
    assert outcome(lambda ch: ch.exchange_declare("pm.x", passive=True)) is None


def test_a_server_named_queue_is_checked_under_its_amq_gen_name():
    set_permissions(configure="^amq\\.gen-")
    assert outcome(lambda ch: ch.queue_declare("", exclusive=True)) is None
    set_permissions(configure=OK)
    code, text = outcome(lambda ch: ch.queue_declare("", exclusive=True))
    assert code == 403 and text.startswith("ACCESS_REFUSED - access to queue 'amq.gen-"), text


def test_a_dead_letter_exchange_needs_write_on_it_and_read_on_the_queue():
    args = {"x-dead-letter-exchange": "pm.x"}
    set_permissions(write="^pm\\.q")
    assert outcome(lambda ch: ch.queue_declare("pm.dlx.q", arguments=args)) == x_refused("pm.x")
    set_permissions()
    assert outcome(lambda ch: ch.queue_declare("pm.dlx.q", arguments=args)) is None


def test_topic_permissions_check_routing_and_binding_keys():
    set_topic("pm.t", write="^pm_user\\.", read="^{username}\\.")
    assert outcome(publish("pm.t", "pm_user.a")) is None
    assert outcome(publish("pm.t", "other.a")) == refused(
        f"access to topic 'other.a' in exchange 'pm.t' in vhost '/' refused for user '{USER}'"
    )
    assert outcome(lambda ch: ch.queue_bind("pm.q", "pm.t", "pm_user.#")) is None
    assert outcome(lambda ch: ch.queue_bind("pm.q", "pm.t", "other.#")) == refused(
        f"access to topic 'other.#' in exchange 'pm.t' in vhost '/' refused for user '{USER}'"
    )
    # Other exchanges are not restricted by pm.t's topic permissions.
    assert outcome(publish("pm.x", "other.a")) is None


def test_a_vhost_without_permissions_is_refused_at_open():
    assert api("DELETE", f"/permissions/%2F/{USER}") == 204
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        as_user()
    assert "access to vhost '/' refused for user 'pm_user'" in str(e.value), str(e.value)
