"""basic.get, ack, nack and reject semantics."""
import pika


def test_basic_get_ok_and_empty(conn, unique, wait_count):
    queue = unique("get")
    ch = conn.channel()
    ch.queue_declare(queue)
    for i in range(3):
        ch.basic_publish('', queue, f'm{i}'.encode())
    wait_count(ch, queue, 3)

    method, props, body = ch.basic_get(queue, auto_ack=True)
    assert isinstance(method, pika.spec.Basic.GetOk)
    assert body == b'm0'
    assert method.message_count == 2          # messages left *after* this one
    assert method.redelivered is False
    assert method.exchange == ''
    assert method.routing_key == queue
    assert isinstance(props, pika.BasicProperties)
    assert ch.basic_get(queue, auto_ack=True)[0].message_count == 1
    assert ch.basic_get(queue, auto_ack=True)[0].message_count == 0

    # get-empty
    assert ch.basic_get(queue, auto_ack=True) == (None, None, None)
    assert ch.basic_get(queue, auto_ack=False) == (None, None, None)


def test_basic_get_delivery_tags_increase_per_channel(conn, unique, wait_count):
    queue = unique("tags")
    ch = conn.channel()
    ch.queue_declare(queue)
    for i in range(3):
        ch.basic_publish('', queue, b'x')
    wait_count(ch, queue, 3)
    tags = [ch.basic_get(queue, auto_ack=False)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    ch.basic_ack(delivery_tag=0, multiple=True)  # tag 0 + multiple = everything outstanding
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    ch.close()
    # nothing came back when the channel closed: all were acked
    assert conn.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_basic_get_nack_requeue_redelivers(conn, unique, get_one):
    queue = unique("nack")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'again')
    method, _, body = get_one(ch, queue, auto_ack=False)
    assert (body, method.redelivered) == (b'again', False)
    assert ch.queue_declare(queue, passive=True).method.message_count == 0  # unacked

    ch.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
    method, _, body = get_one(ch, queue, auto_ack=False)
    assert (body, method.redelivered) == (b'again', True)
    ch.basic_ack(delivery_tag=method.delivery_tag)
    assert ch.basic_get(queue) == (None, None, None)


def test_basic_reject_without_requeue_drops(conn, unique, get_one, wait_count):
    queue = unique("reject")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'drop-me')
    ch.basic_publish('', queue, b'keep-me')
    wait_count(ch, queue, 2)
    method, _, body = get_one(ch, queue, auto_ack=False)
    assert body == b'drop-me'
    ch.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
    ch.close()
    ch = conn.channel()
    assert ch.queue_declare(queue, passive=True).method.message_count == 1
    method, _, body = get_one(ch, queue, auto_ack=True)
    assert (body, method.redelivered) == (b'keep-me', False)


def test_basic_reject_requeue_redelivers(conn, unique, get_one):
    queue = unique("reject-rq")
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish('', queue, b'back')
    method, _, _ = get_one(ch, queue, auto_ack=False)
    ch.basic_reject(delivery_tag=method.delivery_tag, requeue=True)
    method, _, body = get_one(ch, queue, auto_ack=True)
    assert (body, method.redelivered) == (b'back', True)


def test_nack_multiple_requeue_keeps_original_order(conn, unique, wait_count):
    queue = unique("order")
    ch = conn.channel()
    ch.queue_declare(queue)
    for i in range(1, 6):
        ch.basic_publish('', queue, str(i))
    wait_count(ch, queue, 5)

    first = [ch.basic_get(queue, auto_ack=False) for _ in range(5)]
    assert [b for _, _, b in first] == [b'1', b'2', b'3', b'4', b'5']
    assert all(m.redelivered is False for m, _, _ in first)

    ch.basic_nack(delivery_tag=first[-1][0].delivery_tag, multiple=True, requeue=True)
    wait_count(ch, queue, 5)
    again = [ch.basic_get(queue, auto_ack=True) for _ in range(5)]
    assert [b for _, _, b in again] == [b'1', b'2', b'3', b'4', b'5']
    assert all(m.redelivered is True for m, _, _ in again)


def test_requeued_message_goes_back_to_its_position_not_the_tail(conn, unique, wait_count):
    queue = unique("pos")
    ch = conn.channel()
    ch.queue_declare(queue)
    for i in range(1, 4):
        ch.basic_publish('', queue, str(i))
    wait_count(ch, queue, 3)
    m1, _, _ = ch.basic_get(queue, auto_ack=False)
    # RabbitMQ puts a requeued message back at its original (head) position
    ch.basic_reject(m1.delivery_tag, requeue=True)
    bodies = [ch.basic_get(queue, auto_ack=True)[2] for _ in range(3)]
    assert bodies == [b'1', b'2', b'3']


def test_unacked_messages_requeued_when_channel_closes(conn, unique, wait_count):
    queue = unique("close-rq")
    ch = conn.channel()
    ch.queue_declare(queue)
    for i in range(1, 4):
        ch.basic_publish('', queue, str(i))
    wait_count(ch, queue, 3)
    got = [ch.basic_get(queue, auto_ack=False) for _ in range(3)]
    ch.basic_ack(got[1][0].delivery_tag)  # ack only '2'
    ch.close()
    ch = conn.channel()
    wait_count(ch, queue, 2)
    again = [ch.basic_get(queue, auto_ack=True) for _ in range(2)]
    assert [b for _, _, b in again] == [b'1', b'3']
    assert all(m.redelivered for m, _, _ in again)
