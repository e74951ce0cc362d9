"""Tutorial exchange patterns: fanout (publish/subscribe), direct (routing), topic.

Tutorial fixes: the direct-exchange consumer used an undefined `queue_name` (and consumed
from 'hello4'); here the server-named queue from queue_declare("", exclusive=True) is bound
and consumed, as in the fanout/topic consumers."""
import time

import pika.exceptions
import pytest


def _subscriber(new_conn, exchange, exchange_type, routing_keys):
    """Tutorial consumer set-up: declare exchange, server-named exclusive queue, bind."""
    connection = new_conn()
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type=exchange_type)
    result = channel.queue_declare("", exclusive=True)
    queue_name = result.method.queue
    for key in routing_keys:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=key)
    return connection, channel, queue_name


def _collect(connection, channel, queue_name, expected, extra_wait=0.2):
    """Consume with on_message_callback until `expected` messages arrived (or a
    deadline), then keep listening `extra_wait` s to catch unexpected extras."""
    received = []

    def callback(ch, method, properties, body):
        received.append((method.routing_key, body))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        if len(received) >= expected:
            ch.stop_consuming()

    tag = channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=False)
    if expected > 0:
        timer = connection.call_later(5, channel.stop_consuming)
        channel.start_consuming()
        connection.remove_timeout(timer)
    end = time.monotonic() + extra_wait
    while time.monotonic() < end:  # anything beyond `expected` is a failure
        connection.process_data_events(time_limit=0.02)
    if channel.consumer_tags:
        channel.basic_cancel(tag)
    return received


def test_fanout_logs_two_subscribers_get_every_message(new_conn, unique):
    logs = unique("logs")
    subs = [_subscriber(new_conn, logs, 'fanout', ['']) for _ in range(2)]
    for _, _, queue_name in subs:
        assert queue_name.startswith('amq.gen-')
    assert subs[0][2] != subs[1][2]

    # producer (tutorial shape)
    connection = new_conn()
    channel = connection.channel()
    channel.exchange_declare(exchange=logs, exchange_type='fanout')
    messages = [f"info: Hello World! {i}" for i in range(3)]
    for message in messages:
        channel.basic_publish(exchange=logs, routing_key='', body=message)
    # a fanout exchange ignores the routing key
    channel.basic_publish(exchange=logs, routing_key='whatever', body='info: ignored key')
    connection.close()

    expected = [m.encode() for m in messages] + [b'info: ignored key']
    for sub_conn, sub_ch, queue_name in subs:
        got = _collect(sub_conn, sub_ch, queue_name, len(expected))
        assert [b for _, b in got] == expected


def test_direct_exchange_routing_by_key(new_conn, unique):
    log = unique("log")
    # q_error: bound only to 'error'; q_all: three bindings on one queue
    err_conn, err_ch, q_error = _subscriber(new_conn, log, 'direct', ['error'])
    all_conn, all_ch, q_all = _subscriber(new_conn, log, 'direct', ['error', 'info', 'warning'])
    # binding the same key twice is idempotent (still one delivery per message)
    all_ch.queue_bind(exchange=log, queue=q_all, routing_key='error')

    connection = new_conn()
    channel = connection.channel()
    channel.exchange_declare(exchange=log, exchange_type='direct')
    for key in ['error', 'info', 'warning', 'debug', 'ERROR', 'error.x']:
        channel.basic_publish(exchange=log, routing_key=key, body=f'Hello World!,{key}')
    connection.close()

    assert _collect(err_conn, err_ch, q_error, 1) == [('error', b'Hello World!,error')]
    assert _collect(all_conn, all_ch, q_all, 3) == [
        ('error', b'Hello World!,error'),
        ('info', b'Hello World!,info'),
        ('warning', b'Hello World!,warning'),
    ]


def test_direct_exchange_unbind_stops_routing(new_conn, unique):
    log = unique("log")
    conn, ch, q = _subscriber(new_conn, log, 'direct', ['info', 'warning'])
    ch.queue_unbind(queue=q, exchange=log, routing_key='info')
    ch.basic_publish(exchange=log, routing_key='info', body=b'i')
    ch.basic_publish(exchange=log, routing_key='warning', body=b'w')
    assert _collect(conn, ch, q, 1) == [('warning', b'w')]


# binding key -> routing keys it must receive (in publish order)
TOPIC_BINDINGS = {
    'error.#': ['error', 'error.db', 'error.db.critical'],   # '#' matches ZERO or more words
    '*.critical': ['app.critical', 'x.critical'],              # '*' exactly one word
    '#': None,                                                 # everything, incl. ''
    'a.#.b': ['a.b', 'a.x.b', 'a.x.y.b'],
    '*': ['error', 'critical'],                                # one word; not '' (RabbitMQ)
    '': [''],                                                  # empty binding = empty key only
}
TOPIC_KEYS = ['error', 'error.db', 'error.db.critical', 'app.critical', 'x.critical',
              'critical', 'a.b', 'a.x.b', 'a.x.y.b', 'a.b.c', 'b.a.b.c', '']


def test_topic_exchange_star_and_hash(new_conn, unique):
    log3 = unique("log3")
    subs = {key: _subscriber(new_conn, log3, 'topic', [key]) for key in TOPIC_BINDINGS}
    # a queue with two overlapping bindings gets each matching message once
    dup_conn, dup_ch, q_dup = _subscriber(new_conn, log3, 'topic', ['error.*', 'error.#'])

    connection = new_conn()
    channel = connection.channel()
    channel.exchange_declare(exchange=log3, exchange_type='topic')
    for key in TOPIC_KEYS:
        channel.basic_publish(exchange=log3, routing_key=key, body=f'msg[{key}]')
    connection.close()

    for binding, expected_keys in TOPIC_BINDINGS.items():
        if expected_keys is None:
            expected_keys = TOPIC_KEYS
        sub_conn, sub_ch, queue_name = subs[binding]
        got = _collect(sub_conn, sub_ch, queue_name, len(expected_keys), extra_wait=0.1)
        assert [k for k, _ in got] == expected_keys, f"binding {binding!r}"
        assert [b for _, b in got] == [f'msg[{k}]'.encode() for k in expected_keys]

    got = _collect(dup_conn, dup_ch, q_dup, 3)
    assert [k for k, _ in got] == ['error', 'error.db', 'error.db.critical']


def test_unbinding_what_is_already_gone_is_ok(new_conn, unique):
    # RabbitMQ 3.10 answers unbind-ok when the exchange or the queue no longer exists
    # (aio-pika's RPC cleanup and auto-delete exchanges rely on it).
    conn = new_conn()
    ch = conn.channel()
    q = ch.queue_declare(queue='', exclusive=True).method.queue
    x = unique("auto")
    ch.exchange_declare(exchange=x, exchange_type='direct', auto_delete=True)
    ch.queue_bind(queue=q, exchange=x, routing_key='k')
    ch.queue_unbind(queue=q, exchange=x, routing_key='k')   # the last binding: x goes
    ch.queue_unbind(queue=q, exchange=x, routing_key='k')   # x is gone: still ok
    ch.queue_unbind(queue=unique("no-such-queue"), exchange='amq.direct', routing_key='k')
    ch.exchange_unbind(destination=unique("no-such-x"), source='amq.fanout')
    ch.exchange_unbind(destination='amq.topic', source=unique("no-such-x"))
    assert ch.is_open
    # The default exchange is still refused, as RabbitMQ does.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_unbind(queue=q, exchange='', routing_key=q)
    assert exc.value.reply_code == 403
