"""Channel-level errors: 404 NOT_FOUND, 405 RESOURCE_LOCKED, 406 PRECONDITION_FAILED,
403 ACCESS_REFUSED. All close the channel (ChannelClosedByBroker) but not the connection."""
import pika
import pika.exceptions
import pytest

Closed = pika.exceptions.ChannelClosedByBroker


def _expect_close(conn, code, fn):
    ch = conn.channel()
    with pytest.raises(Closed) as exc:
        fn(ch)
    assert exc.value.reply_code == code
    assert ch.is_closed
    assert conn.is_open
    return exc.value.reply_text


# ---------------------------------------------------------------- 404
def test_passive_declare_missing_queue_404(conn, unique):
    q = unique("missing")
    text = _expect_close(conn, 404, lambda ch: ch.queue_declare(q, passive=True))
    assert text.startswith('NOT_FOUND - no queue')
    assert text == f"NOT_FOUND - no queue '{q}' in vhost '/'"


def test_passive_declare_missing_exchange_404(conn, unique):
    x = unique("missing")
    text = _expect_close(conn, 404, lambda ch: ch.exchange_declare(x, passive=True))
    assert text.startswith('NOT_FOUND - no exchange')
    assert text == f"NOT_FOUND - no exchange '{x}' in vhost '/'"


def test_operations_on_missing_queue_404(conn, unique):
    q = unique("missing")
    for op in (lambda ch: ch.basic_get(q),
               lambda ch: ch.basic_consume(q, lambda *a: None),
               lambda ch: ch.queue_purge(q),
               lambda ch: ch.queue_bind(q, 'amq.direct', 'k')):
        assert _expect_close(conn, 404, op).startswith('NOT_FOUND - no queue')


def test_bind_to_missing_exchange_404(conn, unique):
    ch = conn.channel()
    q = ch.queue_declare('', exclusive=True).method.queue
    x = unique("missing")
    with pytest.raises(Closed) as exc:
        ch.queue_bind(q, x, 'k')
    assert exc.value.reply_code == 404
    assert exc.value.reply_text.startswith('NOT_FOUND - no exchange')


def test_channel_usable_after_reopen(conn, unique):
    q = unique("missing")
    _expect_close(conn, 404, lambda ch: ch.queue_declare(q, passive=True))
    ch = conn.channel()
    assert ch.queue_declare(q).method.queue == q


# ---------------------------------------------------------------- 405
LOCKED_PREFIX = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue"


@pytest.mark.parametrize("op", ["declare", "passive_declare", "consume", "basic_get", "delete", "purge"])
def test_exclusive_queue_from_other_connection_405(conn, new_conn, unique, op):
    q = unique("excl")
    owner = conn.channel()
    owner.queue_declare(q, exclusive=True)
    other = new_conn()
    ops = {
        "declare": lambda ch: ch.queue_declare(q),
        "passive_declare": lambda ch: ch.queue_declare(q, passive=True),
        "consume": lambda ch: ch.basic_consume(q, lambda *a: None),
        "basic_get": lambda ch: ch.basic_get(q),
        "delete": lambda ch: ch.queue_delete(q),
        "purge": lambda ch: ch.queue_purge(q),
    }
    text = _expect_close(other, 405, ops[op])
    assert text.startswith(LOCKED_PREFIX)
    assert text.startswith(f"{LOCKED_PREFIX} '{q}' in vhost '/'")
    # the owner is unaffected
    assert owner.queue_declare(q, passive=True).method.queue == q


def test_exclusive_queue_usable_from_other_channel_same_connection(conn, unique):
    q = unique("excl")
    conn.channel().queue_declare(q, exclusive=True)
    ch2 = conn.channel()
    ch2.basic_publish('', q, b'x')
    assert ch2.queue_declare(q, passive=True).method.queue == q


# ---------------------------------------------------------------- 406
def test_redeclare_queue_durable_mismatch_406(conn, unique):
    q = unique("q")
    conn.channel().queue_declare(q, durable=False)
    text = _expect_close(conn, 406, lambda ch: ch.queue_declare(q, durable=True))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'durable' for queue")
    assert text == (f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' "
                    "in vhost '/': received 'true' but current is 'false'")


def test_redeclare_queue_auto_delete_mismatch_406(conn, unique):
    q = unique("q")
    conn.channel().queue_declare(q, auto_delete=False)
    text = _expect_close(conn, 406, lambda ch: ch.queue_declare(q, auto_delete=True))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue")


def test_redeclare_queue_ttl_argument_mismatch_406(conn, unique):
    q = unique("q")
    conn.channel().queue_declare(q, arguments={'x-message-ttl': 100})
    text = _expect_close(conn, 406, lambda ch: ch.queue_declare(q, arguments={'x-message-ttl': 200}))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue")
    assert text == (f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' "
                    "in vhost '/': received '200' but current is '100'")
    # omitting the argument is a mismatch too
    text = _expect_close(conn, 406, lambda ch: ch.queue_declare(q))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue")
    # passive declare ignores properties and arguments
    conn.channel().queue_declare(q, passive=True, durable=True)


def test_redeclare_exchange_type_mismatch_406(conn, unique):
    x = unique("x")
    conn.channel().exchange_declare(x, 'direct')
    text = _expect_close(conn, 406, lambda ch: ch.exchange_declare(x, 'fanout'))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'type' for exchange")
    assert text == (f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' "
                    "in vhost '/': received 'fanout' but current is 'direct'")


def test_redeclare_exchange_durable_mismatch_406(conn, unique):
    x = unique("x")
    conn.channel().exchange_declare(x, 'direct', durable=False)
    text = _expect_close(conn, 406, lambda ch: ch.exchange_declare(x, 'direct', durable=True))
    assert text.startswith("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange")


def test_redeclare_with_same_properties_is_ok(conn, unique):
    q, x = unique("q"), unique("x")
    ch = conn.channel()
    for _ in range(2):
        ch.queue_declare(q, durable=True, arguments={'x-message-ttl': 100})
        ch.exchange_declare(x, 'topic', durable=True)


# ---------------------------------------------------------------- 403
def test_declare_queue_with_amq_prefix_403(conn):
    text = _expect_close(conn, 403, lambda ch: ch.queue_declare('amq.my-queue'))
    assert text == "ACCESS_REFUSED - queue name 'amq.my-queue' contains reserved prefix 'amq.*'"


def test_declare_exchange_with_amq_prefix_403(conn):
    text = _expect_close(conn, 403, lambda ch: ch.exchange_declare('amq.my-exchange', 'direct'))
    assert text == "ACCESS_REFUSED - exchange name 'amq.my-exchange' contains reserved prefix 'amq.*'"


def test_passive_declare_of_builtin_amq_exchange_is_ok(conn):
    ch = conn.channel()
    for name in ('amq.direct', 'amq.fanout', 'amq.topic', 'amq.headers', 'amq.match'):
        ch.exchange_declare(name, passive=True)
