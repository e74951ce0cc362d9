"""Streams (x-queue-type: stream) over AMQP 0-9-1, as RabbitMQ 3.10 serves them.

A stream is an append-only durable queue that consumers read without removing,
from the offset they ask for (x-stream-offset), with manual acks and a prefetch.
Each delivery carries its offset in the x-stream-offset header. What a stream
does not do is refused with RabbitMQ's codes and texts.

Offsets are compared only where RabbitMQ's are contiguous: it spends an offset on
a tracking chunk at the start of each segment, so after segment rolls only
bodies are compared. RabbitMQ 3.10 can also stall a stream consumer whose acks
return credit one at a time while it is far behind, and closing a channel that
still holds unacked stream deliveries makes it close the connection (540); the
tests ack with `multiple` and ack everything before they close.
"""
import datetime
import time

import pika
import pika.exceptions
import pytest

STREAM = {'x-queue-type': 'stream'}


def _stream(ch, name, **extra):
    args = dict(STREAM)
    args.update(extra)
    return ch.queue_declare(name, durable=True, arguments=args)


def _publish(ch, queue, bodies, props=None):
    """Publishes with confirms (each message its own chunk in RabbitMQ)."""
    ch.confirm_delivery()
    for b in bodies:
        ch.basic_publish('', queue, b, props)


def _read(connection, queue, offset=None, count=None, prefetch=100, quiet=0.5):
    """Consumes from `offset` on a new channel until `count` arrive (or it stays
    quiet); acks them all at once; returns (offset header, body, headers) each."""
    ch = connection.channel()
    ch.basic_qos(prefetch_count=prefetch)
    got = []
    args = {} if offset is None else {'x-stream-offset': offset}
    ch.basic_consume(queue, lambda c, m, p, b: got.append((m, p, b)), arguments=args)
    deadline = time.monotonic() + 10
    last = time.monotonic()
    seen = 0
    while time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
        if len(got) != seen:
            seen, last = len(got), time.monotonic()
        if count is not None and len(got) >= count:
            break
        if time.monotonic() - last > quiet:
            break
    if got:
        ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
    ch.close()
    for m, _, _ in got:
        assert m.redelivered is False
    return [(p.headers['x-stream-offset'], b, p.headers) for m, p, b in got]


def _closed_with(fn, kind, code, text=None):
    """Runs fn; expects the broker to close the channel or connection."""
    exc = (pika.exceptions.ChannelClosedByBroker if kind == 'channel'
           else pika.exceptions.ConnectionClosedByBroker)
    with pytest.raises(exc) as e:
        fn()
    assert e.value.reply_code == code, e.value
    if text is not None:
        assert e.value.reply_text == text
    return e.value.reply_text


# --------------------------------------------------------------------------
# declare
# --------------------------------------------------------------------------
def test_declare_a_stream_and_redeclare_it(conn, unique):
    ch = conn.channel()
    q = unique('s')
    ok = _stream(ch, q, **{'x-max-age': '7D', 'x-max-length-bytes': 20_000_000})
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 0)
    _stream(ch, q, **{'x-max-age': '7D', 'x-max-length-bytes': 20_000_000})
    assert ch.queue_declare(q, passive=True).method.queue == q
    text = _closed_with(lambda: _stream(ch, q, **{'x-max-age': '1h', 'x-max-length-bytes': 20_000_000}),
                        'channel', 406)
    assert text == (f"PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue '{q}' "
                    "in vhost '/': received '1h' but current is '7D'")
    ch = conn.channel()
    text = _closed_with(lambda: ch.queue_declare(q, durable=True, arguments={'x-max-age': '7D',
                                                                              'x-max-length-bytes': 20_000_000}),
                        'channel', 406)
    assert text == (f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' "
                    "in vhost '/': received none but current is the value 'stream' of type 'longstr'")


@pytest.mark.parametrize('props, args, text', [
    (dict(durable=False), {}, "invalid property 'non-durable' for queue '{q}' in vhost '/'"),
    (dict(exclusive=True), {}, "invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
    (dict(auto_delete=True), {}, "invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
    (dict(durable=False, exclusive=True, auto_delete=True), {},
     "invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
    ({}, {'x-message-ttl': 1000},
     "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-dead-letter-exchange': 'dlx'},
     "invalid arg 'x-dead-letter-exchange' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-max-length': 10},
     "invalid arg 'x-max-length' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-max-priority': 5},
     "invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-overflow': 'reject-publish'},
     "invalid arg 'x-overflow' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-expires': 10000},
     "invalid arg 'x-expires' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-single-active-consumer': True},
     "invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-queue-mode': 'lazy'},
     "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ({}, {'x-delivery-limit': 3},
     "invalid arg 'x-delivery-limit' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    # Unsupported arguments come before the properties; values before both.
    (dict(durable=False), {'x-dead-letter-exchange': 'dlx'},
     "invalid arg 'x-dead-letter-exchange' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    # The first in the order the client sent them (RabbitMQ). ringmq's gateway
    # gets tables sorted by key (amq-protocol keeps them in a BTreeMap), so
    # only a table already in that order is checked here.
    ({}, {'x-dead-letter-exchange': 'dlx', 'x-message-ttl': 5},
     "invalid arg 'x-dead-letter-exchange' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    # Values in RabbitMQ's order, whatever the client's.
    ({}, {'x-max-age': '1d', 'x-max-length-bytes': 'a'},
     "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({}, {'x-dead-letter-exchange': 'dlx', 'x-max-age': '1d'},
     "invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age"),
    ({}, {'x-max-age': '0s'}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age"),
    ({}, {'x-max-age': '10'}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age"),
    ({}, {'x-max-age': 5},
     "invalid arg 'x-max-age' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({}, {'x-max-length-bytes': -1},
     "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({}, {'x-max-length-bytes': 'abc'},
     "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({}, {'x-stream-max-segment-size-bytes': -1},
     "invalid arg 'x-stream-max-segment-size-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({}, {'x-stream-max-segment-size-bytes': 3_000_000_001},
     "Exceeded max value for x-stream-max-segment-size-bytes"),
    ({}, {'x-initial-cluster-size': 0},
     "invalid arg 'x-initial-cluster-size' for queue '{q}' in vhost '/': {{value_zero,0}}"),
    ({}, {'x-queue-leader-locator': 'nearest'},
     "invalid arg 'x-queue-leader-locator' for queue '{q}' in vhost '/': invalid_queue_locator_arg"),
])
def test_declares_a_stream_refuses(conn, unique, props, args, text):
    q = unique('s')
    kw = dict(durable=True)
    kw.update(props)
    ch = conn.channel()
    _closed_with(lambda: ch.queue_declare(q, arguments=dict(STREAM, **args), **kw),
                 'channel', 406, 'PRECONDITION_FAILED - ' + text.format(q=q))


def test_a_stream_cannot_be_server_named(conn):
    ch = conn.channel()
    _closed_with(lambda: ch.queue_declare('', durable=True, arguments=STREAM), 'channel', 406,
                 'PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue')


@pytest.mark.parametrize('age', ['bad', '-1h', 'h', ''])
def test_an_x_max_age_without_leading_digits_is_an_internal_error(new_conn, unique, age):
    # RabbitMQ 3.10's parser crashes on it: 541, connection closed.
    ch = new_conn().channel()
    _closed_with(lambda: _stream(ch, unique('s'), **{'x-max-age': age}), 'connection', 541,
                 'INTERNAL_ERROR')


def test_arguments_a_stream_takes_or_ignores(conn, unique):
    ch = conn.channel()
    for args in ({'x-max-age': '1Y'}, {'x-max-age': '30M'}, {'x-max-age': '12h'},
                 {'x-max-age': '90m'}, {'x-max-age': '5s'}, {'x-max-length-bytes': 0},
                 {'x-stream-max-segment-size-bytes': 0}, {'x-initial-cluster-size': 3},
                 {'x-queue-leader-locator': 'balanced'}, {'x-queue-leader-locator': 'client-local'},
                 {'x-custom-thing': 1}):
        _stream(ch, unique('s'), **args)


# --------------------------------------------------------------------------
# consume
# --------------------------------------------------------------------------
def test_consumers_read_from_the_offset_they_ask_for(conn, unique, wait_count):
    ch = conn.channel()
    q = unique('s')
    _stream(ch, q)
    before = datetime.datetime.utcnow() - datetime.timedelta(seconds=60)
    _publish(ch, q, [b'm%d' % i for i in range(5)])

    def offsets(offset, count=None):
        return [o for o, _, _ in _read(conn, q, offset, count)]

    everything = _read(conn, q, 'first', 5)
    assert [(o, b) for o, b, _ in everything] == [(i, b'm%d' % i) for i in range(5)]
    # Reading removes nothing: a second consumer sees it all again.
    assert offsets('first', 5) == [0, 1, 2, 3, 4]
    assert offsets('last', 1) == [4]
    assert offsets(2, 3) == [2, 3, 4]
    assert offsets(-1, 5) == [0, 1, 2, 3, 4]
    assert offsets(1000) == []
    assert offsets('next') == []
    assert offsets(None) == []
    assert offsets(before, 5) == [0, 1, 2, 3, 4]
    assert offsets(datetime.datetime.utcnow() + datetime.timedelta(seconds=60)) == []
    assert offsets('1h', 5) == [0, 1, 2, 3, 4]
    assert offsets('1Y', 5) == [0, 1, 2, 3, 4]
    # The message count is what the stream holds (RabbitMQ updates it every
    # second or so); the consumer count stays 0.
    wait_count(ch, q, 5)
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume(q, lambda *a: None)
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0


def test_a_consumer_at_next_gets_what_comes_after_it(new_conn, unique):
    pub = new_conn().channel()
    q = unique('s')
    _stream(pub, q)
    _publish(pub, q, [b'old'])
    c = new_conn()
    ch = c.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    ch.basic_consume(q, lambda x, m, p, b: got.append((m, p, b)))
    c.process_data_events(time_limit=0.3)
    assert got == []
    pub.basic_publish('', q, b'new', pika.BasicProperties(headers={'h': 'v'}, content_type='text/plain',
                                                         message_id='id-1'))
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    m, p, b = got[0]
    assert b == b'new'
    assert m.routing_key == q and m.exchange == ''
    assert p.headers == {'h': 'v', 'x-stream-offset': 1}
    assert (p.content_type, p.message_id) == ('text/plain', 'id-1')
    ch.basic_ack(m.delivery_tag)


def test_prefetch_bounds_deliveries_and_acks_give_credit_back(new_conn, unique):
    pub = new_conn().channel()
    q = unique('s')
    _stream(pub, q)
    _publish(pub, q, [b'm%d' % i for i in range(100)])
    c = new_conn()
    ch = c.channel()
    ch.basic_qos(prefetch_count=50)
    got = []
    ch.basic_consume(q, lambda x, m, p, b: got.append(m), arguments={'x-stream-offset': 'first'})
    c.process_data_events(time_limit=1.0)
    assert len(got) == 50
    ch.basic_ack(got[-1].delivery_tag, multiple=True)
    deadline = time.monotonic() + 5
    while len(got) < 100 and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert len(got) == 100
    ch.basic_ack(got[-1].delivery_tag, multiple=True)
    c.process_data_events(time_limit=0.3)
    assert len(got) == 100


@pytest.mark.parametrize('offset, text', [
    ('5', "invalid arg 'x-stream-offset' for queue '{q}' in vhost '/': {{invalid_stream_offset_arg,{{longstr,<<\"5\">>}}}}"),
    ('0s', "invalid arg 'x-stream-offset' for queue '{q}' in vhost '/': {{invalid_stream_offset_arg,{{longstr,<<\"0s\">>}}}}"),
    ('1d', "invalid arg 'x-stream-offset' for queue '{q}' in vhost '/': {{invalid_stream_offset_arg,{{longstr,<<\"1d\">>}}}}"),
])
def test_a_bad_x_stream_offset_is_refused(conn, unique, offset, text):
    ch = conn.channel()
    q = unique('s')
    _stream(ch, q)
    ch.basic_qos(prefetch_count=10)
    _closed_with(lambda: ch.basic_consume(q, lambda *a: None, arguments={'x-stream-offset': offset}),
                 'channel', 406, 'PRECONDITION_FAILED - ' + text.format(q=q))


@pytest.mark.parametrize('offset', ['bad', 'FIRST', 'first ', '-1h', True])
def test_an_unparsable_x_stream_offset_is_an_internal_error(new_conn, unique, offset):
    c = new_conn()
    ch = c.channel()
    q = unique('s')
    _stream(ch, q)
    ch.basic_qos(prefetch_count=10)
    _closed_with(lambda: ch.basic_consume(q, lambda *a: None, arguments={'x-stream-offset': offset}),
                 'connection', 541, 'INTERNAL_ERROR')


def test_consumes_a_stream_refuses(new_conn, unique):
    setup = new_conn().channel()
    q = unique('s')
    _stream(setup, q)
    where = f"queue '{q}' in vhost '/'"

    def consume(qos=None, global_qos=None, **kw):
        ch = new_conn().channel()
        if qos is not None:
            ch.basic_qos(prefetch_count=qos)
        if global_qos is not None:
            ch.basic_qos(prefetch_count=global_qos, global_qos=True)
        return lambda: ch.basic_consume(q, lambda *a: None, **kw)

    prefetch = f"PRECONDITION_FAILED - consumer prefetch count is not set for '{where}'"
    _closed_with(consume(), 'channel', 406, prefetch)
    _closed_with(consume(qos=0), 'channel', 406, prefetch)
    _closed_with(consume(auto_ack=True), 'channel', 406, prefetch)
    _closed_with(consume(global_qos=5), 'channel', 406, prefetch)
    _closed_with(consume(qos=10, auto_ack=True), 'connection', 540,
                 f"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues {where}")
    _closed_with(consume(qos=10, global_qos=5), 'connection', 540,
                 f"NOT_IMPLEMENTED - {where} does not support global qos")
    _closed_with(consume(qos=10, arguments={'x-priority': 3}), 'channel', 406,
                 f"PRECONDITION_FAILED - invalid arg 'x-priority' for {where} of queue type rabbit_stream_queue")
    # The offset is read first, then the arguments, then the prefetch.
    _closed_with(consume(arguments={'x-priority': 3, 'x-stream-offset': '1d'}), 'channel', 406)
    _closed_with(consume(auto_ack=True, arguments={'x-priority': 3}), 'channel', 406,
                 f"PRECONDITION_FAILED - invalid arg 'x-priority' for {where} of queue type rabbit_stream_queue")
    # Exclusive consumers and unknown arguments are accepted.
    consume(qos=10, exclusive=True)()
    consume(qos=10, arguments={'x-custom': 1})()


def test_get_purge_nack_and_reject_are_not_implemented(new_conn, unique):
    pub = new_conn().channel()
    q = unique('s')
    _stream(pub, q)
    _publish(pub, q, [b'a', b'b'])
    where = f"queue '{q}' in vhost '/'"
    for auto_ack in (False, True):
        ch = new_conn().channel()
        _closed_with(lambda: ch.basic_get(q, auto_ack=auto_ack), 'connection', 540,
                     f"NOT_IMPLEMENTED - basic.get not supported by stream queues {where}")
    ch = new_conn().channel()
    _closed_with(lambda: ch.queue_purge(q), 'connection', 540,
                 f"NOT_IMPLEMENTED - queue.purge not supported by stream queues {where}")
    for settle in (lambda ch, t: ch.basic_nack(t, requeue=True),
                   lambda ch, t: ch.basic_nack(t, requeue=False),
                   lambda ch, t: ch.basic_reject(t, requeue=True),
                   lambda ch, t: ch.basic_nack(t, multiple=True, requeue=True)):
        c = new_conn()
        ch = c.channel()
        ch.basic_qos(prefetch_count=10)
        got = []
        ch.basic_consume(q, lambda x, m, p, b: got.append(m), arguments={'x-stream-offset': 'first'})
        while len(got) < 2:
            c.process_data_events(time_limit=0.05)
        settle(ch, got[-1].delivery_tag)

        def wait():
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                c.process_data_events(time_limit=0.05)
        _closed_with(wait, 'connection', 540,
                     f"NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues {where}")


def test_a_classic_queue_refuses_x_stream_offset(conn, unique):
    ch = conn.channel()
    q = unique('c')
    ch.queue_declare(q)
    _closed_with(lambda: ch.basic_consume(q, lambda *a: None, arguments={'x-stream-offset': 'first'}),
                 'channel', 406,
                 f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost '/' "
                 "of queue type rabbit_classic_queue")


def test_deleting_a_stream_cancels_its_consumers(new_conn, unique):
    c = new_conn()
    ch = c.channel()
    q = unique('s')
    _stream(ch, q)
    _publish(ch, q, [b'x'])
    ch.basic_qos(prefetch_count=10)
    cancelled = []
    ch.add_on_cancel_callback(lambda m: cancelled.append(m.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    other = new_conn().channel()
    assert other.queue_delete(q).method.message_count == 0
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        c.process_data_events(time_limit=0.05)
    assert cancelled == [tag]


# --------------------------------------------------------------------------
# retention
# --------------------------------------------------------------------------
def test_max_length_bytes_drops_the_oldest_segments(conn, unique):
    ch = conn.channel()
    q = unique('s')
    _stream(ch, q, **{'x-stream-max-segment-size-bytes': 1000, 'x-max-length-bytes': 3000})
    bodies = [b'%06d' % i + b'x' * 100 for i in range(60)]
    _publish(ch, q, bodies)
    kept = [b for _, b, _ in _read(conn, q, 'first')]
    assert kept, 'the newest segment always stays'
    assert kept[-1] == bodies[-1]
    assert len(kept) < 30, len(kept)
    # What is left is the newest messages, in order.
    assert kept == bodies[len(bodies) - len(kept):]


def test_max_age_drops_old_segments_when_a_new_one_starts(conn, unique):
    ch = conn.channel()
    q = unique('s')
    _stream(ch, q, **{'x-max-age': '1s', 'x-stream-max-segment-size-bytes': 400})
    old = [b'old-%d' % i + b'x' * 100 for i in range(5)]
    _publish(ch, q, old)
    time.sleep(2)
    # Older than x-max-age, but nothing goes before a segment starts.
    assert [b for _, b, _ in _read(conn, q, 'first', 5)] == old
    new = [b'new-%d' % i + b'x' * 100 for i in range(5)]
    _publish(ch, q, new)
    kept = [b for _, b, _ in _read(conn, q, 'first')]
    assert kept[-5:] == new
    assert len(kept) < 10, 'the oldest segments were dropped'


# --------------------------------------------------------------------------
# durability
# --------------------------------------------------------------------------
@pytest.mark.restart
@pytest.mark.timeout(240)
def test_a_stream_survives_a_restart(restart_broker, params_factory, unique):
    q = unique('s')
    c = pika.BlockingConnection(params_factory())
    ch = c.channel()
    _stream(ch, q)
    bodies = [b'persistent-%d' % i for i in range(10)]
    _publish(ch, q, bodies[:5], pika.BasicProperties(delivery_mode=2))
    _publish(ch, q, bodies[5:])  # transient messages are kept by a stream too
    c.close()

    restart_broker()

    c = pika.BlockingConnection(params_factory())
    got = _read(c, q, 'first', 10)
    assert [(o, b) for o, b, _ in got] == list(enumerate(bodies))
    ch = c.channel()
    _publish(ch, q, [b'after'])
    assert [(o, b) for o, b, _ in _read(c, q, 'last', 1)] == [(10, b'after')]
    c.close()
