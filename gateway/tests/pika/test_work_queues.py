"""Work queues: round-robin dispatch, prefetch_count=1 fair dispatch, and basic.qos with
global=true (one limit shared by the channel's consumers, together with per-consumer prefetch)."""
import pika.exceptions
import pytest


def _worker(new_conn, queue, received, ack=True, prefetch=None):
    """Tutorial worker: own connection, declare queue, manual-ack consumer."""
    connection = new_conn()
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    if prefetch is not None:
        channel.basic_qos(prefetch_count=prefetch)

    def callback(ch, method, properties, body):
        received.append((method, body))
        if ack:
            ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=False)
    return connection, channel


def test_round_robin_two_consumers(new_conn, unique, pump_until, pump_for):
    queue = unique("hello4")
    n = 10
    got_a, got_b = [], []
    conn_a, _ = _worker(new_conn, queue, got_a)
    conn_b, _ = _worker(new_conn, queue, got_b)

    producer = new_conn()
    channel = producer.channel()
    channel.queue_declare(queue=queue)
    for i in range(n):
        channel.basic_publish(exchange='', routing_key=queue, body=str(i))

    pump_until(lambda: len(got_a) + len(got_b) >= n, conn_a, conn_b)
    pump_for(0.1, conn_a, conn_b)

    bodies_a = [int(b) for _, b in got_a]
    bodies_b = [int(b) for _, b in got_b]
    assert len(bodies_a) == len(bodies_b) == n // 2
    # strictly alternating: one consumer gets the even messages, the other the odd ones
    assert sorted([bodies_a, bodies_b]) == [list(range(0, n, 2)), list(range(1, n, 2))]
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == 0


def test_prefetch_one_fair_dispatch(new_conn, unique, pump_until, pump_for, get_one):
    queue = unique("fair")
    n = 10
    slow, fast = [], []
    slow_conn, _ = _worker(new_conn, queue, slow, ack=False, prefetch=1)  # never acks
    fast_conn, _ = _worker(new_conn, queue, fast, ack=True, prefetch=1)

    producer = new_conn()
    channel = producer.channel()
    channel.queue_declare(queue=queue)
    for i in range(n):
        channel.basic_publish(exchange='', routing_key=queue, body=str(i))

    pump_until(lambda: len(slow) + len(fast) >= n, slow_conn, fast_conn)
    pump_for(0.2, slow_conn, fast_conn)

    # the slow consumer holds exactly one unacked message; the fast one got all the rest
    assert len(slow) == 1
    assert len(fast) == n - 1
    assert sorted(int(b) for _, b in slow + fast) == list(range(n))
    # the first message went to the first-registered (slow) consumer: round-robin start
    assert slow[0][1] == b'0'
    assert [int(b) for _, b in fast] == list(range(1, n))
    ok = channel.queue_declare(queue=queue, passive=True).method
    assert ok.message_count == 0
    assert ok.consumer_count == 2

    # the slow worker dies: its unacked message goes back to the queue, redelivered
    slow_conn.close()
    pump_until(lambda: len(fast) == n, fast_conn)
    method, body = fast[-1]
    assert body == slow[0][1]
    assert method.redelivered is True


# --------------------------------------------------------------------------
# basic.qos global=true: one limit shared by all the consumers of a channel
# (RabbitMQ 3.10 semantics), applied together with each consumer's own
# prefetch; basic.get is not limited by either.
# --------------------------------------------------------------------------
def _filled_queues(new_conn, unique, n, count=2):
    producer = new_conn()
    channel = producer.channel()
    queues = [unique("qos") for _ in range(count)]
    for q in queues:
        channel.queue_declare(queue=q)
        for i in range(n):
            channel.basic_publish(exchange='', routing_key=q, body=f'{q}-{i}')
    for q in queues:
        # a round-trip per queue: every publish has arrived
        while channel.queue_declare(queue=q, passive=True).method.message_count != n:
            producer.sleep(0.02)
    return queues


def _collector(channel, queue, received, auto_ack=False):
    def callback(ch, method, properties, body):
        received.append((queue, method))

    return channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=auto_ack)


def test_global_prefetch_is_shared_by_the_channels_consumers(new_conn, unique, pump_for):
    queues = _filled_queues(new_conn, unique, 5)
    connection = new_conn()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=3, global_qos=True)
    got = []
    for q in queues:
        _collector(channel, q, got)
    pump_for(0.3, connection)
    assert len(got) == 3  # in all, whichever queues they came from
    # each ack makes room for exactly one more
    channel.basic_ack(delivery_tag=got[0][1].delivery_tag)
    pump_for(0.3, connection)
    assert len(got) == 4
    channel.basic_ack(delivery_tag=0, multiple=True)
    pump_for(0.3, connection)
    assert len(got) == 7


def test_per_consumer_and_global_prefetch_apply_together(new_conn, unique, pump_for):
    queues = _filled_queues(new_conn, unique, 5)
    connection = new_conn()
    # per consumer 1, shared 5: each consumer is held at its own limit
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    channel.basic_qos(prefetch_count=5, global_qos=True)
    got = []
    for q in queues:
        _collector(channel, q, got)
    pump_for(0.3, connection)
    assert sorted(q for q, _ in got) == sorted(queues)
    # per consumer 4, shared 2: the shared limit binds; a later global call does
    # not replace the per-consumer limit
    other = connection.channel()
    other.basic_qos(prefetch_count=4)
    other.basic_qos(prefetch_count=2, global_qos=True)
    more = []
    _collector(other, queues[0], more)
    pump_for(0.3, connection)
    assert len(more) == 2


def test_global_prefetch_applies_to_consumers_started_before_it(new_conn, unique, pump_for):
    queues = _filled_queues(new_conn, unique, 0)
    connection = new_conn()
    channel = connection.channel()
    got = []
    for q in queues:
        _collector(channel, q, got)
    channel.basic_qos(prefetch_count=2, global_qos=True)
    producer = new_conn().channel()
    for q in queues:
        for i in range(3):
            producer.basic_publish(exchange='', routing_key=q, body=str(i))
    pump_for(0.3, connection)
    assert len(got) == 2
    channel.basic_ack(delivery_tag=got[0][1].delivery_tag)
    pump_for(0.3, connection)
    assert len(got) == 3
    # global 0 lifts the shared limit
    channel.basic_qos(prefetch_count=0, global_qos=True)
    pump_for(0.3, connection)
    assert len(got) == 6


def test_a_per_consumer_qos_lifts_the_global_limit(new_conn, unique, pump_for):
    # RabbitMQ 3.10: basic.qos global=false also unlimits the channel (so the
    # per-consumer prefetch must be set before the global one to have both)
    queues = _filled_queues(new_conn, unique, 3)
    connection = new_conn()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=2, global_qos=True)
    got = []
    for q in queues:
        _collector(channel, q, got)
    pump_for(0.3, connection)
    assert len(got) == 2
    channel.basic_qos(prefetch_count=10)
    pump_for(0.3, connection)
    assert len(got) == 6
    # a new global limit counts the deliveries already unacked
    channel.basic_qos(prefetch_count=4, global_qos=True)
    producer = new_conn().channel()
    for i in range(2):
        producer.basic_publish(exchange='', routing_key=queues[0], body=str(i))
    pump_for(0.3, connection)
    assert len(got) == 6
    channel.basic_ack(delivery_tag=0, multiple=True)
    pump_for(0.3, connection)
    assert len(got) == 8


def test_basic_get_is_not_limited_by_prefetch(new_conn, unique, pump_for):
    queues = _filled_queues(new_conn, unique, 3)
    connection = new_conn()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    channel.basic_qos(prefetch_count=1, global_qos=True)
    # an unacked get takes no room...
    first_get, _, _ = channel.basic_get(queues[1], auto_ack=False)
    assert first_get is not None
    got = []
    _collector(channel, queues[0], got)
    pump_for(0.3, connection)
    assert len(got) == 1
    # ...a full channel still gets...
    method, _, _ = channel.basic_get(queues[1], auto_ack=False)
    assert method is not None
    # ...and acking gets makes no room for the consumer
    channel.basic_ack(delivery_tag=first_get.delivery_tag)
    pump_for(0.3, connection)
    assert len(got) == 1
    channel.basic_ack(delivery_tag=got[0][1].delivery_tag)
    pump_for(0.3, connection)
    assert len(got) == 2


def test_no_ack_consumer_waits_while_the_global_limit_is_reached(new_conn, unique, pump_for):
    queues = _filled_queues(new_conn, unique, 4)
    connection = new_conn()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1, global_qos=True)
    held = []
    tag = _collector(channel, queues[0], held)
    pump_for(0.3, connection)
    assert len(held) == 1
    free = []
    _collector(channel, queues[1], free, auto_ack=True)
    pump_for(0.3, connection)
    assert free == []
    # once there is room, no-ack deliveries flow (they do not count)
    channel.basic_cancel(tag)
    channel.basic_ack(delivery_tag=held[0][1].delivery_tag)
    pump_for(0.3, connection)
    assert len(free) == 4


@pytest.mark.parametrize("global_qos", [False, True])
def test_recover_redelivers_within_the_prefetch(new_conn, unique, pump_for, global_qos):
    (queue,) = _filled_queues(new_conn, unique, 5, count=1)
    connection = new_conn()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=2, global_qos=global_qos)
    got = []
    _collector(channel, queue, got)
    pump_for(0.3, connection)
    assert len(got) == 2
    channel.basic_recover(requeue=True)
    pump_for(0.3, connection)
    assert len(got) == 4
    assert [m.redelivered for _, m in got[2:]] == [True, True]


def test_a_quorum_queue_cannot_be_consumed_under_a_global_limit(new_conn, unique):
    queue = unique("qos-quorum")
    connection = new_conn()
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True, arguments={'x-queue-type': 'quorum'})
    channel.basic_qos(prefetch_count=5)
    channel.basic_qos(prefetch_count=2, global_qos=True)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as exc:
        channel.basic_consume(queue=queue, on_message_callback=lambda *a: None)
    assert exc.value.reply_code == 540
    assert exc.value.reply_text == (
        f"NOT_IMPLEMENTED - queue '{queue}' in vhost '/' does not support global qos")
    # once the global limit is lifted, it can
    channel = new_conn().channel()
    channel.basic_qos(prefetch_count=2, global_qos=True)
    channel.basic_qos(prefetch_count=0, global_qos=True)
    channel.basic_consume(queue=queue, on_message_callback=lambda *a: None)
