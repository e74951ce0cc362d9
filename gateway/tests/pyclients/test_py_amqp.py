"""py-amqp (the transport under kombu and Celery) against the server under test.
Each test passes against RabbitMQ 3.10."""
import amqp
import pytest

from conftest import AMQP_HOST, name


@pytest.fixture
def conn():
    c = amqp.Connection(AMQP_HOST, userid="guest", password="guest", connect_timeout=5)
    c.connect()
    yield c
    if c.connected:
        c.close()


def test_queue_delete_with_a_consumer_on_the_same_channel_returns(conn):
    # RabbitMQ sends queue.delete-ok before basic.cancel; the other order made
    # py-amqp (and so kombu and Celery) raise ConsumerCancelled inside queue_delete.
    ch = conn.channel()
    q = name("deleted")
    ch.queue_declare(q, auto_delete=False)
    cancelled = []
    tag = ch.basic_consume(q, callback=lambda m: None, on_cancel=cancelled.append)
    ch.queue_delete(q)
    conn.drain_events(timeout=2)
    assert cancelled == [tag]


def test_transaction_rollback_and_commit(conn):
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    ch.tx_select()
    ch.basic_publish(amqp.Message(b"rolled back"), routing_key=q)
    ch.tx_rollback()
    ch.basic_publish(amqp.Message(b"committed"), routing_key=q)
    ch.tx_commit()
    assert ch.basic_get(q, no_ack=True).body == b"committed"
    assert ch.basic_get(q, no_ack=True) is None


def test_unbinding_from_an_exchange_that_went_away_is_ok(conn):
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    ex = name("gone")
    ch.exchange_declare(ex, "direct", auto_delete=True)
    ch.queue_bind(q, ex, "k")
    ch.queue_unbind(q, ex, "k")  # the last binding: the exchange goes
    ch.queue_unbind(q, ex, "k")  # RabbitMQ 3.10 answers unbind-ok
    with pytest.raises(amqp.exceptions.NotFound):
        ch.exchange_declare(ex, "direct", passive=True)


def test_rejected_messages_come_back_redelivered_in_order(conn):
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    for i in range(3):
        ch.basic_publish(amqp.Message(b"%d" % i), routing_key=q)
    tags = [ch.basic_get(q).delivery_tag for _ in range(3)]
    for tag in reversed(tags):
        ch.basic_reject(tag, requeue=True)
    again = [ch.basic_get(q, no_ack=True) for _ in range(3)]
    assert [m.body for m in again] == [b"0", b"1", b"2"]
    assert all(m.delivery_info["redelivered"] for m in again)
