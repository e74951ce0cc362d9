"""Direct reply-to (amq.rabbitmq.reply-to): RPC replies without a reply queue.

The requester consumes from the pseudo-queue in no-ack mode and publishes with
reply_to='amq.rabbitmq.reply-to' on the same channel; the broker rewrites reply_to to
'amq.rabbitmq.reply-to.<token>', and a publish to the default exchange with that name as
routing key goes straight to the requester's channel, from any connection. Every
assertion was checked against RabbitMQ 3.10.
"""
import time
import uuid

import pika
import pika.exceptions
import pytest

REPLY_TO = 'amq.rabbitmq.reply-to'


def _requester(conn):
    """A channel with a reply consumer; returns (channel, replies list, consumer tag)."""
    ch = conn.channel()
    replies = []
    tag = ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    return ch, replies, tag


def _rewritten_name(conn, requester, queue, get_one):
    """Publishes a request with reply_to=amq.rabbitmq.reply-to to `queue` and returns the
    reply_to the server sees."""
    requester.basic_publish('', queue, b'req', pika.BasicProperties(reply_to=REPLY_TO))
    _, props, _ = get_one(conn.channel(), queue)
    return props.reply_to


def test_rpc_with_direct_reply_to(new_conn, unique, pump_until):
    """RabbitMQ tutorial 6 with direct reply-to instead of a callback queue; the servers
    are other connections (on other cores)."""
    rpc_queue = unique('rpc_queue')
    servers = []
    seen_reply_to = []
    for _ in range(4):
        server_conn = new_conn()
        server = server_conn.channel()
        server.queue_declare(queue=rpc_queue)
        server.basic_qos(prefetch_count=1)

        def on_request(ch, method, props, body):
            seen_reply_to.append(props.reply_to)
            n = int(body)
            ch.basic_publish(exchange='',
                             routing_key=props.reply_to,
                             properties=pika.BasicProperties(correlation_id=props.correlation_id),
                             body=str(n * n))
            ch.basic_ack(delivery_tag=method.delivery_tag)

        server.basic_consume(queue=rpc_queue, on_message_callback=on_request)
        servers.append(server_conn)

    client_conn = new_conn()
    client, replies, tag = _requester(client_conn)
    calls = {}
    for n in range(1, 21):
        corr_id = str(uuid.uuid4())
        calls[corr_id] = n
        client.basic_publish(exchange='',
                             routing_key=rpc_queue,
                             properties=pika.BasicProperties(reply_to=REPLY_TO,
                                                             correlation_id=corr_id),
                             body=str(n))
    pump_until(lambda: len(replies) == len(calls), client_conn, *servers, timeout=10)
    assert {p.correlation_id: int(b) for _, p, b in replies} == \
        {c: n * n for c, n in calls.items()}
    # reply_to was rewritten to one name per reply consumer, under the pseudo-queue.
    assert len(set(seen_reply_to)) == 1
    name = seen_reply_to[0]
    assert name.startswith(REPLY_TO + '.') and len(name) > len(REPLY_TO) + 1
    for method, _, _ in replies:
        assert method.consumer_tag == tag
        assert method.exchange == ''
        assert method.routing_key == name
        assert method.redelivered is False


def test_reply_from_the_requesters_own_connection(conn, unique, get_one, pump_until):
    q = unique('drt-self')
    requester, replies, _ = _requester(conn)
    requester.queue_declare(q, exclusive=True)
    name = _rewritten_name(conn, requester, q, get_one)
    requester.basic_publish('', name, b'same channel')
    conn.channel().basic_publish('', name, b'other channel')
    pump_until(lambda: len(replies) == 2, conn)
    assert sorted(b for _, _, b in replies) == [b'other channel', b'same channel']


def test_manual_ack_reply_consumer_is_refused(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == 'PRECONDITION_FAILED - reply consumer cannot acknowledge'
    # A channel error: the connection stays open.
    assert conn.is_open
    conn.channel().basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)


def test_second_reply_consumer_on_a_channel_is_refused(conn):
    ch, _, _ = _requester(conn)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == 'PRECONDITION_FAILED - reply consumer already set'
    # One per channel: another channel of the same connection may have its own.
    _requester(conn)


def _publish_request_refused(ch, queue):
    ch.basic_publish('', queue, b'req', pika.BasicProperties(reply_to=REPLY_TO))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare('', exclusive=True)  # the refusal arrives before this reply
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == 'PRECONDITION_FAILED - fast reply consumer does not exist'


def test_request_without_reply_consumer_is_refused(conn, unique, get_one):
    q = unique('drt-noconsumer')
    conn.channel().queue_declare(q)
    _publish_request_refused(conn.channel(), q)
    # The reply consumer of another channel does not count.
    _requester(conn)
    _publish_request_refused(conn.channel(), q)
    # Nor does a cancelled one.
    ch, _, tag = _requester(conn)
    ch.basic_cancel(tag)
    _publish_request_refused(ch, q)
    assert conn.is_open
    # Other reply_to values are left alone, with or without a reply consumer.
    ch = conn.channel()
    for reply_to in ('callback', REPLY_TO + '.foo', 'AMQ.rabbitmq.reply-to'):
        ch.basic_publish('', q, b'x', pika.BasicProperties(reply_to=reply_to))
    got = [get_one(ch, q)[1].reply_to for _ in range(3)]
    assert got == ['callback', REPLY_TO + '.foo', 'AMQ.rabbitmq.reply-to']


def test_declare_of_the_pseudo_queue(new_conn, unique, get_one):
    conn = new_conn()
    # Passive or not, with or without a reply consumer: one consumer, no messages.
    for passive in (True, False):
        ok = conn.channel().queue_declare(REPLY_TO, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)
    # A live reply consumer's name, from another connection too.
    q = unique('drt-declare')
    requester, _, tag = _requester(conn)
    requester.queue_declare(q, exclusive=True)
    name = _rewritten_name(conn, requester, q, get_one)
    other = new_conn()
    for passive in (True, False):
        ok = other.channel().queue_declare(name, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 1)
    # Any other name under the pseudo-queue is not found, passive or not.
    requester.basic_cancel(tag)
    for bad in (name, REPLY_TO + '.', REPLY_TO + '.garbage', REPLY_TO + 'x'):
        for passive in (True, False):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
                other.channel().queue_declare(bad, passive=passive)
            assert exc.value.reply_code == 404
            assert exc.value.reply_text == f"NOT_FOUND - no queue '{bad}' in vhost '/'"


def test_pseudo_queue_is_not_a_queue(conn):
    for op in (lambda ch: ch.basic_get(REPLY_TO),
               lambda ch: ch.queue_purge(REPLY_TO),
               lambda ch: ch.queue_bind(REPLY_TO, 'amq.direct', 'k'),
               lambda ch: ch.basic_consume(REPLY_TO + '.garbage', lambda *a: None,
                                           auto_ack=True)):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            op(conn.channel())
        assert exc.value.reply_code == 404
        assert exc.value.reply_text.startswith("NOT_FOUND - no queue 'amq.rabbitmq.reply-to")


def test_mandatory_reply_is_returned_even_when_delivered(new_conn, unique, get_one, pump_until):
    """RabbitMQ 3.10 does not count a reply consumer as a route: a mandatory reply is
    delivered *and* returned (312 NO_ROUTE), and confirmed at once."""
    q = unique('drt-mandatory')
    conn = new_conn()
    requester, replies, _ = _requester(conn)
    requester.queue_declare(q, exclusive=True)
    name = _rewritten_name(conn, requester, q, get_one)
    server_conn = new_conn()
    server = server_conn.channel()
    returns = []
    server.add_on_return_callback(lambda ch, m, p, b: returns.append((m, b)))
    server.basic_publish('', name, b'mandatory', mandatory=True)
    pump_until(lambda: len(replies) == 1 and len(returns) == 1, conn, server_conn)
    method, body = returns[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key, body) == \
        (312, 'NO_ROUTE', '', name, b'mandatory')
    # With confirms, pika reports the return as unroutable; the reply still arrives.
    confirming = server_conn.channel()
    confirming.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        confirming.basic_publish('', name, b'confirmed', mandatory=True)
    confirming.basic_publish('', name, b'not mandatory')
    pump_until(lambda: len(replies) == 3, conn)
    assert [b for _, _, b in replies] == [b'mandatory', b'confirmed', b'not mandatory']


def test_dead_lettered_to_a_reply_name(new_conn, unique, get_one, pump_until):
    q = unique('drt-dlx')
    conn = new_conn()
    requester, replies, _ = _requester(conn)
    requester.queue_declare(q, exclusive=True)
    name = _rewritten_name(conn, requester, q, get_one)
    server_conn = new_conn()
    server = server_conn.channel()
    dead = unique('drt-dead')
    server.queue_declare(dead, exclusive=True, arguments={
        'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': name, 'x-message-ttl': 0})
    server.basic_publish('', dead, b'expired')
    pump_until(lambda: len(replies) == 1, conn, server_conn)
    method, _, body = replies[0]
    assert (method.exchange, method.routing_key, body) == ('', name, b'expired')


def test_reply_after_the_requester_closed_is_dropped(new_conn, unique, get_one, pump_for):
    q = unique('drt-closed')
    server_conn = new_conn()
    server = server_conn.channel()
    server.queue_declare(q)
    returns = []
    server.add_on_return_callback(lambda ch, m, p, b: returns.append((m.reply_code, b)))

    requester_conn = new_conn()
    requester, _, _ = _requester(requester_conn)
    after_channel_close = _rewritten_name(server_conn, requester, q, get_one)
    requester.close()
    requester, _, _ = _requester(requester_conn)
    after_connection_close = _rewritten_name(server_conn, requester, q, get_one)
    assert after_connection_close != after_channel_close
    requester_conn.close()

    for name in (after_channel_close, after_connection_close):
        server.basic_publish('', name, b'dropped')
        server.basic_publish('', name, b'returned', mandatory=True)
    pump_for(0.5, server_conn)
    assert returns == [(312, b'returned'), (312, b'returned')]
    # No error: the server's channel still works.
    server.basic_publish('', q, b'still open')
    assert get_one(server, q)[2] == b'still open'


def test_cancelled_reply_consumer_gets_no_replies(conn, unique, get_one, pump_for, pump_until):
    q = unique('drt-cancel')
    requester, replies, tag = _requester(conn)
    requester.queue_declare(q, exclusive=True)
    old = _rewritten_name(conn, requester, q, get_one)
    requester.basic_cancel(tag)
    conn.channel().basic_publish('', old, b'to the cancelled consumer')
    pump_for(0.3, conn)
    assert replies == []
    # A new reply consumer on the channel has a new name; the old one stays dead.
    new_replies = []
    requester.basic_consume(REPLY_TO, lambda c, m, p, b: new_replies.append(b), auto_ack=True)
    new = _rewritten_name(conn, requester, q, get_one)
    assert new != old
    other = conn.channel()
    other.basic_publish('', old, b'old')
    other.basic_publish('', new, b'new')
    pump_until(lambda: new_replies == [b'new'], conn)
    pump_for(0.3, conn)
    assert new_replies == [b'new']
