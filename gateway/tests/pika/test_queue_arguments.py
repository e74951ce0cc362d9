"""Queue arguments: x-message-ttl, dead-lettering, x-max-length / x-overflow, x-max-priority."""
import datetime

import pika
import pika.exceptions
import pytest


def _dlx_setup(ch, unique, exchange_type='fanout', routing_key=''):
    dlx = unique("dlx")
    dlq = unique("dlq")
    ch.exchange_declare(dlx, exchange_type)
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, routing_key)
    return dlx, dlq


def _check_x_death(headers, reason, queue, routing_keys):
    x_death = headers['x-death']
    assert isinstance(x_death, list) and len(x_death) == 1
    entry = x_death[0]
    assert entry['reason'] == reason
    assert entry['queue'] == queue
    assert entry['count'] == 1
    assert entry['exchange'] == ''
    assert entry['routing-keys'] == routing_keys
    assert isinstance(entry['time'], datetime.datetime)
    assert headers['x-first-death-reason'] == reason
    assert headers['x-first-death-queue'] == queue
    assert headers['x-first-death-exchange'] == ''


def test_message_ttl_expires_and_dead_letters(conn, unique, get_one):
    ch = conn.channel()
    dlx, dlq = _dlx_setup(ch, unique)
    queue = unique("ttl")
    ch.queue_declare(queue, arguments={'x-message-ttl': 100, 'x-dead-letter-exchange': dlx})
    ch.basic_publish('', queue, b'will-expire',
                     pika.BasicProperties(headers={'mine': 'kept'}, message_id='m-1'))

    method, props, body = get_one(ch, dlq, timeout=5)
    assert body == b'will-expire'
    assert method.exchange == dlx
    assert method.routing_key == queue  # original routing key is kept
    assert props.message_id == 'm-1'
    assert props.headers['mine'] == 'kept'
    _check_x_death(props.headers, 'expired', queue, [queue])
    # the source queue is empty
    assert ch.queue_declare(queue, passive=True).method.message_count == 0


def test_message_ttl_without_dlx_just_drops(conn, unique, wait_count):
    ch = conn.channel()
    queue = unique("ttl")
    ch.queue_declare(queue, arguments={'x-message-ttl': 100})
    ch.confirm_delivery()  # confirmed = enqueued, so the count below is not racing the publish
    ch.basic_publish('', queue, b'gone')
    wait_count(ch, queue, 0)
    assert ch.basic_get(queue) == (None, None, None)


def test_reject_without_requeue_dead_letters_rejected(conn, unique, get_one):
    ch = conn.channel()
    dlx, dlq = _dlx_setup(ch, unique, 'direct', 'dead')
    queue = unique("src")
    ch.queue_declare(queue, arguments={'x-dead-letter-exchange': dlx,
                                       'x-dead-letter-routing-key': 'dead'})
    ch.basic_publish('', queue, b'bad')
    method, _, _ = get_one(ch, queue, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)

    method, props, body = get_one(ch, dlq)
    assert body == b'bad'
    assert method.routing_key == 'dead'  # x-dead-letter-routing-key replaces it
    # routing-keys in x-death are the *original* routing keys
    _check_x_death(props.headers, 'rejected', queue, [queue])


def test_nack_without_requeue_dead_letters_via_default_exchange(conn, unique, get_one):
    ch = conn.channel()
    dlq = unique("dlq")
    ch.queue_declare(dlq)
    queue = unique("src")
    ch.queue_declare(queue, arguments={'x-dead-letter-exchange': '',
                                       'x-dead-letter-routing-key': dlq})
    ch.basic_publish('', queue, b'nacked')
    method, _, _ = get_one(ch, queue, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    _, props, body = get_one(ch, dlq)
    assert body == b'nacked'
    assert props.headers['x-death'][0]['reason'] == 'rejected'


def test_max_length_drops_head(conn, unique, wait_count):
    ch = conn.channel()
    queue = unique("maxlen")
    ch.queue_declare(queue, arguments={'x-max-length': 2})
    ch.confirm_delivery()  # confirmed = enqueued; default overflow (drop-head) acks all three
    for body in (b'1', b'2', b'3'):
        ch.basic_publish('', queue, body)
    assert ch.queue_declare(queue, passive=True).method.message_count == 2
    assert [ch.basic_get(queue)[2] for _ in range(2)] == [b'2', b'3']


def test_overflow_reject_publish_nacks(conn, unique):
    ch = conn.channel()
    queue = unique("rejpub")
    ch.queue_declare(queue, arguments={'x-max-length': 2, 'x-overflow': 'reject-publish'})
    ch.confirm_delivery()
    ch.basic_publish('', queue, b'1')
    ch.basic_publish('', queue, b'2')
    # RabbitMQ nacks it (basic.nack delivery_tag=3 multiple=True requeue=True here);
    # pika's BlockingChannel turns that into NackError (with an empty .messages list)
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish('', queue, b'3')
    assert ch.is_open
    assert ch.queue_declare(queue, passive=True).method.message_count == 2
    assert [ch.basic_get(queue)[2] for _ in range(2)] == [b'1', b'2']
    # room again: publishing succeeds
    ch.basic_publish('', queue, b'4')


def test_max_priority_delivers_higher_priority_first(conn, unique, wait_count):
    ch = conn.channel()
    queue = unique("prio")
    ch.queue_declare(queue, arguments={'x-max-priority': 10})
    sent = [(b'p1', 1), (b'p5a', 5), (b'none', None), (b'p9', 9), (b'p5b', 5), (b'p0', 0)]
    for body, prio in sent:
        ch.basic_publish('', queue, body, pika.BasicProperties(priority=prio))
    wait_count(ch, queue, len(sent))
    got = [ch.basic_get(queue, auto_ack=True) for _ in sent]
    # highest first; FIFO within a priority; no priority counts as 0
    assert [b for _, _, b in got] == [b'p9', b'p5a', b'p5b', b'p1', b'none', b'p0']
    assert got[0][1].priority == 9


def test_max_priority_consumer_sees_priority_order(conn, unique, wait_count, consume):
    ch = conn.channel()
    queue = unique("prio")
    ch.queue_declare(queue, arguments={'x-max-priority': 5})
    for i, prio in enumerate([1, 2, 3, 4, 5, 9]):
        ch.basic_publish('', queue, str(prio), pika.BasicProperties(priority=prio))
    wait_count(ch, queue, 6)
    got = consume(conn, ch, queue, 6)
    # priorities above x-max-priority are treated as the max (9 -> 5, after the earlier 5)
    assert [b for _, _, b in got] == [b'5', b'9', b'4', b'3', b'2', b'1']
