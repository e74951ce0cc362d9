"""Message bodies and properties round-trip unchanged."""
import hashlib
import os

import pika
import pika.exceptions
import pytest


@pytest.mark.parametrize("size", [0, 1, 131072 - 8, 131072, 131072 + 1, 1 << 20, 16 << 20],
                         ids=["empty", "1B", "frame-8", "frame", "frame+1", "1MiB", "16MiB"])
def test_body_round_trip_byte_exact(conn, unique, get_one, size):
    queue = unique("big")
    ch = conn.channel()
    ch.queue_declare(queue)
    body = os.urandom(size)
    ch.basic_publish('', queue, body)
    method, props, got = get_one(ch, queue, auto_ack=True, timeout=15)
    assert len(got) == size
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_large_message_via_consumer(conn, unique, consume):
    queue = unique("big")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.confirm_delivery()
    body = os.urandom(1 << 20)
    ch.basic_publish('', queue, body)
    ch.basic_publish('', queue, b'small-after')
    got = consume(conn, ch, queue, 2, timeout=15)
    assert [b for _, _, b in got] == [body, b'small-after']


ALL_PROPS = dict(
    content_type='application/json',
    content_encoding='utf-8',
    headers={
        'str': 'text',
        'unicode': 'žluťoučký 中文',
        'int': 42,
        'negative': -7,
        'big': 2 ** 40,
        'true': True,
        'false': False,
        'nested': {'a': 1, 'b': 'two', 'deeper': {'c': True}},
        'list': [1, 'two', False, {'k': 'v'}],
    },
    delivery_mode=2,
    priority=5,
    correlation_id='corr-123',
    reply_to='reply-queue',
    expiration='60000',
    message_id='msg-456',
    timestamp=1700000000,
    type='example.type',
    user_id='guest',
    app_id='pika-suite',
)


def test_all_properties_round_trip(conn, unique, get_one):
    queue = unique("props")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'{}', pika.BasicProperties(**ALL_PROPS))
    _, props, body = get_one(ch, queue, auto_ack=True)
    assert body == b'{}'
    for name, value in ALL_PROPS.items():
        assert getattr(props, name) == value, name
    # bools stay bools (not ints)
    assert props.headers['true'] is True and props.headers['false'] is False
    assert props.headers['nested']['deeper']['c'] is True


def test_properties_round_trip_through_consumer(conn, unique, consume):
    queue = unique("props")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'x', pika.BasicProperties(**ALL_PROPS))
    [(method, props, body)] = consume(conn, ch, queue, 1)
    for name, value in ALL_PROPS.items():
        assert getattr(props, name) == value, name


def test_absent_properties_stay_absent(conn, unique, get_one):
    queue = unique("noprops")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'bare')
    _, props, _ = get_one(ch, queue)
    for name in ALL_PROPS:
        assert getattr(props, name) is None, name


def test_user_id_other_than_authenticated_user_406(conn, unique):
    queue = unique("uid")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'x', pika.BasicProperties(user_id='other'))
    # the publish is asynchronous; the channel close arrives on the next round-trip
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(queue, passive=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == ("PRECONDITION_FAILED - user_id property set to 'other' "
                                    "but authenticated user was 'guest'")
    # the message was not enqueued
    assert conn.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_per_message_expiration(conn, unique, wait_count):
    queue = unique("exp")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'short', pika.BasicProperties(expiration='50'))
    ch.basic_publish('', queue, b'long', pika.BasicProperties(expiration='60000'))
    ch.connection.sleep(0.3)
    # the expired head is dropped; the other one remains
    wait_count(ch, queue, 1)
    _, props, body = ch.basic_get(queue, auto_ack=True)
    assert body == b'long'
    assert props.expiration == '60000'
