"""Transactions (tx.select / tx.commit / tx.rollback) as RabbitMQ 3.10 has them:
publishes and acks wait for the commit, a rollback drops the publishes and gives
the acked deliveries back, and the mode errors are 406 channel errors."""
import pika
import pika.exceptions
import pytest


def count(conn, queue):
    return conn.channel().queue_declare(queue=queue, passive=True).method.message_count


def test_commit_publishes_and_rollback_discards(conn, unique):
    queue = unique("tx")
    ch = conn.channel()
    ch.queue_declare(queue=queue, durable=True)
    assert isinstance(ch.tx_select().method, pika.spec.Tx.SelectOk)
    for i in range(5):
        ch.basic_publish('', queue, f'm{i}'.encode(),
                         pika.BasicProperties(delivery_mode=2))
    assert count(conn, queue) == 0
    assert isinstance(ch.tx_commit().method, pika.spec.Tx.CommitOk)
    assert count(conn, queue) == 5
    ch.basic_publish('', queue, b'dropped')
    assert isinstance(ch.tx_rollback().method, pika.spec.Tx.RollbackOk)
    ch.tx_commit()
    assert count(conn, queue) == 5


def test_acks_wait_for_the_commit(conn, unique):
    queue = unique("tx-ack")
    ch = conn.channel()
    ch.queue_declare(queue=queue)
    for body in (b'a', b'b', b'c'):
        ch.basic_publish('', queue, body)
    ch.tx_select()
    tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(3)]
    ch.basic_ack(tags[0])
    ch.tx_commit()
    ch.basic_ack(tags[1])
    ch.tx_rollback()
    ch.basic_ack(tags[2])
    # Closing the channel with an uncommitted ack requeues that delivery too.
    ch.close()
    check = conn.channel()
    bodies = []
    while True:
        method, _, body = check.basic_get(queue, auto_ack=True)
        if method is None:
            break
        bodies.append(body)
    assert bodies == [b'b', b'c']


def test_rolled_back_ack_can_be_acked_again(conn, unique):
    queue = unique("tx-reack")
    ch = conn.channel()
    ch.queue_declare(queue=queue)
    ch.basic_publish('', queue, b'x')
    ch.tx_select()
    tag = ch.basic_get(queue)[0].delivery_tag
    ch.basic_ack(tag)
    ch.tx_rollback()
    ch.basic_ack(tag)
    ch.tx_commit()
    assert count(conn, queue) == 0
    ch.close()
    assert count(conn, queue) == 0


def test_unroutable_mandatory_publish_is_returned_at_commit(conn, unique):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append(body))
    ch.tx_select()
    ch.basic_publish('', unique("nowhere"), b'lost', mandatory=True)
    conn.process_data_events(time_limit=0.3)
    assert returned == []
    ch.tx_commit()
    conn.process_data_events(time_limit=0.3)
    assert returned == [b'lost']


@pytest.mark.parametrize("method", ["tx_commit", "tx_rollback"])
def test_commit_or_rollback_without_select_is_406(conn, method):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        getattr(ch, method)()
    assert exc.value.reply_code == 406
    assert 'not transactional' in exc.value.reply_text
    assert conn.is_open


def test_tx_and_confirm_modes_exclude_each_other(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.tx_select()
    assert exc.value.reply_code == 406
    assert 'cannot switch from confirm to tx mode' in exc.value.reply_text
    ch = conn.channel()
    ch.tx_select()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.confirm_delivery()
    assert exc.value.reply_code == 406
    assert 'cannot switch from tx to confirm mode' in exc.value.reply_text
