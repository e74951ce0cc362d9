"""Quorum queues as a client sees them on RabbitMQ 3.10: always durable, refused
as non-durable/exclusive/auto-delete/server-named or with classic-only
arguments, x-delivery-count on redeliveries, and x-delivery-limit dead-lettering
poison messages. (ringmq runs them on one node: not replicated yet.)"""
import pika
import pika.exceptions
import pytest

QUORUM = {'x-queue-type': 'quorum'}


@pytest.mark.parametrize("kw, extra, text", [
    (dict(durable=False), {}, "invalid property 'non-durable' for queue '{q}' in vhost '/'"),
    (dict(durable=True, exclusive=True), {}, "invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
    (dict(durable=True, auto_delete=True), {}, "invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
    (dict(durable=True), {'x-max-priority': 5},
     "invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
    (dict(durable=True), {'x-max-age': '1h'},
     "invalid arg 'x-max-age' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
])
def test_refused_declares(conn, unique, kw, extra, text):
    q = unique("qq-bad")
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(q, arguments={**QUORUM, **extra}, **kw)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == "PRECONDITION_FAILED - " + text.format(q=q)


def test_server_named_quorum_queue_is_refused(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare('', durable=True, arguments=QUORUM)
    assert exc.value.reply_text == (
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue")


def test_delivery_limit_dead_letters_a_poison_message(conn, unique):
    q, dead = unique("qq"), unique("qq-dead")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(dead)
    ch.queue_declare(q, durable=True, arguments={
        **QUORUM, 'x-delivery-limit': 2,
        'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead})
    ch.basic_publish('', q, b'poison')
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=1)
    seen = []
    for method, props, _body in consumer.consume(q, inactivity_timeout=2):
        if method is None:
            break
        seen.append((method.redelivered, (props.headers or {}).get('x-delivery-count')))
        consumer.basic_nack(method.delivery_tag, requeue=True)
    consumer.cancel()
    assert seen == [(False, None), (True, 1), (True, 2)]
    method, props, body = ch.basic_get(dead, auto_ack=True)
    assert body == b'poison'
    assert props.headers['x-death'][0]['reason'] == 'delivery_limit'
    assert ch.queue_declare(q, durable=True, arguments={
        **QUORUM, 'x-delivery-limit': 2,
        'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead},
    ).method.message_count == 0


@pytest.mark.parametrize("arg, value", [
    ('x-delivery-limit', 3), ('x-max-age', '1h'), ('x-initial-cluster-size', 1),
    ('x-queue-leader-locator', 'balanced'), ('x-dead-letter-strategy', 'at-most-once'),
])
def test_classic_queue_refuses_other_types_arguments(conn, unique, arg, value):
    q = unique("classic-bad")
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(q, durable=True, arguments={arg: value})
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/' "
        "of queue type rabbit_classic_queue")
