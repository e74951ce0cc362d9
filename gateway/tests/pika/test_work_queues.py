"""Work queues: round-robin dispatch and prefetch_count=1 fair dispatch."""


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
