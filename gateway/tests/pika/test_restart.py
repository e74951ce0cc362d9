"""Durability across a broker restart (needs BROKER_RESTART_CMD; skipped otherwise).

One restart is shared by the tests of this module: the module fixture sets up
every scenario, restarts the broker once, and each test checks its own part
without consuming anything, so the tests can run alone or in any order.
"""
import uuid

import pika
import pytest

pytestmark = [pytest.mark.restart, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def restarted(restart_broker, params_factory):
    tag = uuid.uuid4().hex[:12]
    names = {
        "durable_q": f"durable-{tag}",
        "transient_q": f"transient-{tag}",
        "durable_x": f"durable-x-{tag}",
        "bound_q": f"bound-{tag}",
    }
    c = pika.BlockingConnection(params_factory())
    ch = c.channel()
    ch.confirm_delivery()  # every publish below is confirmed before the restart
    ch.queue_declare(names["durable_q"], durable=True)
    ch.queue_declare(names["transient_q"], durable=False)
    ch.queue_declare(names["bound_q"], durable=True)
    ch.exchange_declare(names["durable_x"], 'direct', durable=True)
    ch.queue_bind(names["bound_q"], names["durable_x"], routing_key='k')
    persistent = pika.BasicProperties(delivery_mode=2, message_id='p')
    transient = pika.BasicProperties(delivery_mode=1)
    ch.basic_publish('', names["durable_q"], b'persistent-1', persistent)
    ch.basic_publish('', names["durable_q"], b'transient-1', transient)
    ch.basic_publish('', names["durable_q"], b'persistent-2', persistent)
    ch.basic_publish('', names["durable_q"], b'transient-2')  # no properties = transient
    ch.basic_publish('', names["transient_q"], b'persistent-in-transient-queue', persistent)
    assert ch.queue_declare(names["durable_q"], passive=True).method.message_count == 4
    c.close()

    restart_broker()

    yield names

    c = pika.BlockingConnection(params_factory())
    try:
        for name in names.values():
            for op in ("queue_delete", "exchange_delete"):
                try:
                    getattr(c.channel(), op)(name)
                except pika.exceptions.ChannelClosedByBroker:
                    pass
    finally:
        if c.is_open:
            c.close()


def _peek_all(ch, queue):
    """basic_get everything without acking; the messages go back to the queue
    when the channel closes."""
    msgs = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            break
        msgs.append((method, props, body))
    ch.close()
    return msgs


def test_durable_queue_and_persistent_messages_survive_restart(restarted, conn):
    ch = conn.channel()
    q = restarted["durable_q"]
    ok = ch.queue_declare(q, durable=True).method  # same properties: still declarable
    assert ok.message_count == 2
    msgs = _peek_all(ch, q)
    assert [b for _, _, b in msgs] == [b'persistent-1', b'persistent-2']
    for method, props, body in msgs:
        assert props.delivery_mode == 2
        assert props.message_id == 'p'


def test_transient_messages_in_durable_queue_are_gone_after_restart(restarted, conn):
    ch = conn.channel()
    bodies = [b for _, _, b in _peek_all(ch, restarted["durable_q"])]
    assert b'transient-1' not in bodies
    assert b'transient-2' not in bodies
    assert len(bodies) == 2


def test_non_durable_queue_gone_after_restart(restarted, conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(restarted["transient_q"], passive=True)
    assert exc.value.reply_code == 404
    assert exc.value.reply_text.startswith('NOT_FOUND - no queue')


def test_durable_exchange_and_binding_survive_restart(restarted, conn):
    ch = conn.channel()
    ch.exchange_declare(restarted["durable_x"], passive=True)
    ch.confirm_delivery()
    # mandatory + confirms: raises UnroutableError if the binding was lost
    ch.basic_publish(restarted["durable_x"], 'k', b'via-binding', mandatory=True)
    bodies = [b for _, _, b in _peek_all(ch, restarted["bound_q"])]
    assert bodies == [b'via-binding']
