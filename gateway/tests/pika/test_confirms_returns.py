"""Publisher confirms and mandatory returns."""
import pika
import pika.exceptions
import pytest


def test_confirm_delivery_publish_succeeds(conn, unique, wait_count):
    queue = unique("confirm")
    channel = conn.channel()
    channel.queue_declare(queue=queue)
    channel.confirm_delivery()
    # with confirms, BlockingChannel.basic_publish waits for the broker's ack
    assert channel.basic_publish(exchange='', routing_key=queue, body=b'one') is None
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == 1


def test_confirm_mandatory_unroutable_raises_unroutable_error(conn, unique):
    channel = conn.channel()
    channel.confirm_delivery()
    missing = unique("no-such-queue")
    # the broker sends basic.return (312 NO_ROUTE) before basic.ack -> UnroutableError
    with pytest.raises(pika.exceptions.UnroutableError) as exc:
        channel.basic_publish(exchange='', routing_key=missing, body=b'lost',
                              properties=pika.BasicProperties(message_id='m1'),
                              mandatory=True)
    returned = exc.value.messages
    assert len(returned) == 1
    assert returned[0].method.reply_code == 312
    assert returned[0].method.reply_text == 'NO_ROUTE'
    assert returned[0].method.exchange == ''
    assert returned[0].method.routing_key == missing
    assert returned[0].body == b'lost'
    assert returned[0].properties.message_id == 'm1'
    # the channel stays open and usable
    assert channel.is_open
    q = channel.queue_declare('', exclusive=True).method.queue
    channel.basic_publish(exchange='', routing_key=q, body=b'ok', mandatory=True)


def test_confirm_non_mandatory_unroutable_is_acked_and_dropped(conn, unique):
    channel = conn.channel()
    channel.confirm_delivery()
    # no mandatory flag: the unroutable message is silently dropped and confirmed
    channel.basic_publish(exchange='', routing_key=unique("nowhere"), body=b'dropped')
    # same through a named exchange with no bindings
    ex = unique("ex")
    channel.exchange_declare(ex, 'direct')
    channel.basic_publish(exchange=ex, routing_key='k', body=b'dropped')
    assert channel.is_open


def test_confirm_mandatory_to_exchange_without_binding(conn, unique):
    channel = conn.channel()
    channel.confirm_delivery()
    ex = unique("ex")
    channel.exchange_declare(ex, 'direct')
    with pytest.raises(pika.exceptions.UnroutableError) as exc:
        channel.basic_publish(exchange=ex, routing_key='k', body=b'x', mandatory=True)
    assert exc.value.messages[0].method.exchange == ex
    assert exc.value.messages[0].method.routing_key == 'k'


def test_many_confirms_in_a_row(conn, unique):
    queue = unique("confirm-many")
    channel = conn.channel()
    channel.queue_declare(queue=queue)
    channel.confirm_delivery()
    n = 500
    for i in range(n):
        channel.basic_publish(exchange='', routing_key=queue, body=str(i),
                              properties=pika.BasicProperties(delivery_mode=2))
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == n
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b'0'
    assert method.message_count == n - 1


def test_confirm_publish_to_missing_exchange_closes_channel(conn, unique):
    channel = conn.channel()
    channel.confirm_delivery()
    missing = unique("no-such-exchange")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        channel.basic_publish(exchange=missing, routing_key='k', body=b'x')
    assert exc.value.reply_code == 404
    assert exc.value.reply_text == f"NOT_FOUND - no exchange '{missing}' in vhost '/'"
    assert channel.is_closed
    assert conn.is_open  # a channel error leaves the connection usable


def test_mandatory_return_without_confirms(conn, unique, pump_until, wait_count):
    channel = conn.channel()
    returned = []

    def on_return(ch, method, properties, body):
        returned.append((method, properties, body))

    channel.add_on_return_callback(on_return)
    missing = unique("no-such-queue")
    channel.basic_publish(exchange='', routing_key=missing, body=b'bounce',
                          properties=pika.BasicProperties(correlation_id='c-1'),
                          mandatory=True)
    pump_until(lambda: returned, conn)
    method, properties, body = returned[0]
    assert isinstance(method, pika.spec.Basic.Return)
    assert method.reply_code == 312
    assert method.reply_text == 'NO_ROUTE'
    assert method.exchange == ''
    assert method.routing_key == missing
    assert properties.correlation_id == 'c-1'
    assert body == b'bounce'

    # a routable mandatory publish is not returned
    q = channel.queue_declare('', exclusive=True).method.queue
    channel.basic_publish(exchange='', routing_key=q, body=b'kept', mandatory=True)
    wait_count(channel, q, 1)
    conn.process_data_events(time_limit=0.2)
    assert len(returned) == 1
