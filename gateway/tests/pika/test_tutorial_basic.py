"""Tutorial patterns: simple queue, manual ack, durable queue (no restart)."""
import pika


def test_simple_queue_hello_auto_ack(new_conn, unique):
    queue = unique("hello")

    # producer (tutorial shape): connect, declare, publish, close
    connection = new_conn()
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    channel.basic_publish(exchange='', routing_key=queue, body='Hello World!')
    connection.close()

    # consumer: connect, declare again (idempotent), consume with auto_ack
    connection = new_conn()
    channel = connection.channel()
    declare_ok = channel.queue_declare(queue=queue)
    assert declare_ok.method.queue == queue

    received = []

    def callback(ch, method, properties, body):
        received.append((method, body))
        ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
    timer = connection.call_later(5, channel.stop_consuming)
    channel.start_consuming()
    connection.remove_timeout(timer)

    assert [b for _, b in received] == [b'Hello World!']
    method = received[0][0]
    assert method.exchange == ''
    assert method.routing_key == queue
    assert method.redelivered is False
    # auto_ack: nothing left in the queue, nothing unacked
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == 0


def test_manual_ack_unacked_message_redelivered_to_next_consumer(new_conn, unique, pump_until):
    queue = unique("ack")

    producer = new_conn()
    pch = producer.channel()
    pch.queue_declare(queue=queue)
    pch.basic_publish(exchange='', routing_key=queue, body=b'work')

    # first consumer receives the message but "dies" before acking
    dying = new_conn()
    dch = dying.channel()
    dch.queue_declare(queue=queue)
    first = []
    dch.basic_consume(queue=queue, auto_ack=False,
                      on_message_callback=lambda ch, m, p, b: first.append((m, b)))
    pump_until(lambda: first, dying)
    assert first[0][1] == b'work'
    assert first[0][0].redelivered is False
    # while it is held unacked it is not "ready" in the queue
    assert pch.queue_declare(queue=queue, passive=True).method.message_count == 0
    dying.close()

    # next consumer gets the same message, flagged redelivered
    connection = new_conn()
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    received = []

    def callback(ch, method, properties, body):
        received.append((method, body))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=False)
    timer = connection.call_later(5, channel.stop_consuming)
    channel.start_consuming()
    connection.remove_timeout(timer)

    assert len(received) == 1
    method, body = received[0]
    assert body == b'work'
    assert method.redelivered is True
    # acked: the queue is now empty
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == 0


def test_durable_queue_persistent_message(new_conn, unique, wait_count):
    queue = unique("durable")

    connection = new_conn()
    channel = connection.channel()
    ok = channel.queue_declare(queue=queue, durable=True)
    assert ok.method.message_count == 0
    channel.basic_publish(exchange='',
                          routing_key=queue,
                          body='Hello World!',
                          properties=pika.BasicProperties(
                              delivery_mode=2,  # make message persistent
                          ))
    wait_count(channel, queue, 1)
    connection.close()

    # consumer declares durable=True too (same properties -> ok)
    connection = new_conn()
    channel = connection.channel()
    ok = channel.queue_declare(queue=queue, durable=True)
    assert ok.method.message_count == 1
    assert ok.method.consumer_count == 0
    received = []

    def callback(ch, method, properties, body):
        received.append((properties, body))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=False)
    timer = connection.call_later(5, channel.stop_consuming)
    channel.start_consuming()
    connection.remove_timeout(timer)

    assert len(received) == 1
    props, body = received[0]
    assert body == b'Hello World!'
    assert props.delivery_mode == 2
    assert channel.queue_declare(queue=queue, passive=True).method.message_count == 0
