"""Purge/delete counts, if_empty/if_unused, server-initiated cancel, auto-delete and
exclusive queue lifetimes."""
import pika
import pika.exceptions
import pytest


def _publish_n(ch, queue, n, wait_count):
    for i in range(n):
        ch.basic_publish('', queue, str(i))
    wait_count(ch, queue, n)


def test_purge_returns_count(conn, unique, wait_count):
    queue = unique("purge")
    ch = conn.channel()
    ch.queue_declare(queue)
    _publish_n(ch, queue, 7, wait_count)
    ok = ch.queue_purge(queue)
    assert isinstance(ok.method, pika.spec.Queue.PurgeOk)
    assert ok.method.message_count == 7
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    assert ch.queue_purge(queue).method.message_count == 0


def test_purge_does_not_touch_unacked(conn, unique, wait_count):
    queue = unique("purge")
    ch = conn.channel()
    ch.queue_declare(queue)
    _publish_n(ch, queue, 3, wait_count)
    m, _, _ = ch.basic_get(queue, auto_ack=False)
    assert ch.queue_purge(queue).method.message_count == 2
    ch.basic_nack(m.delivery_tag, requeue=True)
    wait_count(ch, queue, 1)


def test_delete_returns_count(conn, unique, wait_count):
    queue = unique("del")
    ch = conn.channel()
    ch.queue_declare(queue)
    _publish_n(ch, queue, 4, wait_count)
    ok = ch.queue_delete(queue)
    assert isinstance(ok.method, pika.spec.Queue.DeleteOk)
    assert ok.method.message_count == 4
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(queue, passive=True)
    assert exc.value.reply_code == 404


def test_delete_missing_queue_is_ok(conn, unique):
    # RabbitMQ: deleting a queue that does not exist succeeds with message_count 0
    ok = conn.channel().queue_delete(unique("never-declared"))
    assert ok.method.message_count == 0


def test_delete_if_empty_on_non_empty_queue_406(conn, unique, wait_count):
    queue = unique("del")
    ch = conn.channel()
    ch.queue_declare(queue)
    _publish_n(ch, queue, 1, wait_count)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_delete(queue, if_empty=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' not empty"
    # still there, message intact
    assert conn.channel().queue_declare(queue, passive=True).method.message_count == 1


def test_delete_if_unused_with_consumer_406(conn, new_conn, unique):
    queue = unique("del")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_consume(queue, lambda *a: None)
    other = new_conn().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        other.queue_delete(queue, if_unused=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == f"PRECONDITION_FAILED - queue '{queue}' in vhost '/' in use"


def test_delete_with_consumer_attached_sends_cancel(conn, new_conn, unique, pump_until):
    queue = unique("del")
    ch = conn.channel()
    ch.queue_declare(queue)
    cancels = []
    ch.add_on_cancel_callback(lambda frame: cancels.append(frame))
    tag = ch.basic_consume(queue, lambda *a: None)
    assert ch.consumer_tags == [tag]

    other = new_conn().channel()
    assert other.queue_delete(queue).method.message_count == 0

    # the broker sends basic.cancel (consumer_cancel_notify capability)
    pump_until(lambda: cancels, conn)
    frame = cancels[0]
    assert isinstance(frame.method, pika.spec.Basic.Cancel)
    assert frame.method.consumer_tag == tag
    assert ch.is_open
    assert ch.consumer_tags == []


def test_auto_delete_queue_deleted_when_last_consumer_cancels(conn, new_conn, unique):
    queue = unique("autodel")
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)
    t1 = ch.basic_consume(queue, lambda *a: None)
    t2 = ch.basic_consume(queue, lambda *a: None)
    ch.basic_cancel(t1)
    # one consumer left: still there
    probe = new_conn().channel()
    assert probe.queue_declare(queue, passive=True).method.consumer_count == 1
    ch.basic_cancel(t2)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        probe.queue_declare(queue, passive=True)
    assert exc.value.reply_code == 404
    assert exc.value.reply_text.startswith('NOT_FOUND - no queue')


def test_auto_delete_queue_without_consumers_is_kept(conn, unique):
    queue = unique("autodel")
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)
    # never had a consumer: RabbitMQ keeps it (auto-delete triggers on the last *cancel*)
    ch.basic_publish('', queue, b'x')
    m, _, _ = ch.basic_get(queue, auto_ack=True)
    assert m is not None
    ch.queue_declare(queue, passive=True)


def test_auto_delete_queue_deleted_when_consumer_connection_closes(new_conn, unique):
    queue = unique("autodel")
    c = new_conn()
    ch = c.channel()
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_consume(queue, lambda *a: None)
    c.close()
    probe = new_conn().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        probe.queue_declare(queue, passive=True)
    assert exc.value.reply_code == 404


def test_exclusive_queue_deleted_when_connection_closes(new_conn, unique):
    queue = unique("excl")
    owner = new_conn()
    ch = owner.channel()
    ch.queue_declare(queue, exclusive=True)
    ch.basic_publish('', queue, b'x')
    server_named = ch.queue_declare('', exclusive=True).method.queue
    owner.close()
    probe = new_conn()
    for name in (queue, server_named):
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            probe.channel().queue_declare(name, passive=True)
        assert exc.value.reply_code == 404
        assert exc.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '/'"


def test_exclusive_queue_survives_channel_close(conn, unique):
    queue = unique("excl")
    ch = conn.channel()
    ch.queue_declare(queue, exclusive=True)
    ch.close()
    conn.channel().queue_declare(queue, passive=True)


def test_basic_cancel_stops_deliveries(conn, unique, pump_until, pump_for, wait_count):
    queue = unique("cancel")
    ch = conn.channel()
    ch.queue_declare(queue)
    got = []
    tag = ch.basic_consume(queue, lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish('', queue, b'1')
    pump_until(lambda: got, conn)
    ch.basic_cancel(tag)
    ch.basic_publish('', queue, b'2')
    pump_for(0.2, conn)
    assert got == [b'1']
    wait_count(ch, queue, 1)
