"""aio-pika (on aiormq) against the server under test: the AMQP features beyond
the tutorial that asyncio applications use. Each test passes against
RabbitMQ 3.10."""
import asyncio

import aio_pika
import aio_pika.patterns
import pytest

from conftest import AMQP_URL, name, run_async

CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
]


async def collect(queue, count, *, no_ack=True, arguments=None, timeout=5):
    """Consumes until `count` messages arrived; returns them."""
    got = []
    done = asyncio.get_running_loop().create_future()

    async def on_message(message):
        got.append(message)
        if len(got) == count and not done.done():
            done.set_result(None)

    tag = await queue.consume(on_message, no_ack=no_ack, arguments=arguments)
    await asyncio.wait_for(done, timeout)
    await queue.cancel(tag)
    return got


@run_async
async def test_server_announces_the_capabilities_clients_look_for():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        caps = conn.transport.connection.server_properties["capabilities"]
        for cap in CAPABILITIES:
            assert caps.get(cap) is True, cap


@run_async
async def test_update_secret_is_answered_and_the_connection_carries_on():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        await conn.update_secret("guest", reason="token refresh")
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"after refresh"), q.name)
        msg = await q.get(timeout=5, no_ack=True)
        assert msg.body == b"after refresh"


@run_async
async def test_close_right_after_a_burst_of_publishes_completes():
    # amqplib's close() never completed here when the gateway dropped the
    # socket right after close-ok; the client that sent Close closes it.
    conn = await aio_pika.connect(AMQP_URL)
    ch = await conn.channel(publisher_confirms=False)
    q = await ch.declare_queue(name("burst"), auto_delete=True)
    for i in range(1000):
        await ch.default_exchange.publish(aio_pika.Message(b"x" * 100), q.name)
    await asyncio.wait_for(conn.close(), 10)
    assert conn.is_closed


@run_async
async def test_transaction_commit_delivers_and_rollback_discards():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue(exclusive=True)
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(aio_pika.Message(b"rolled back"), q.name)
        await tx.rollback()
        await ch.default_exchange.publish(aio_pika.Message(b"committed"), q.name)
        assert (await ch.declare_queue(q.name, passive=True)).declaration_result.message_count == 0
        await tx.commit()
        msg = await q.get(timeout=5, no_ack=True)
        assert msg.body == b"committed"
        assert await q.get(fail=False) is None


@run_async
async def test_rpc_pattern_round_trip_and_both_ends_close_cleanly():
    # aio-pika's RPC binds each result queue to the auto-delete headers
    # exchange rpc.dlx; whichever end closes last unbinds from an exchange
    # that went away with the other's binding, which RabbitMQ answers unbind-ok.
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        server = await aio_pika.patterns.RPC.create(await conn.channel())
        client = await aio_pika.patterns.RPC.create(await conn.channel())
        method = name("mul")

        async def mul(*, x, y):
            return x * y

        await server.register(method, mul, auto_delete=True)
        assert await client.call(method, kwargs=dict(x=6, y=7)) == 42
        await client.close()
        await server.close()


@run_async
async def test_deleting_a_queue_with_our_own_consumer_answers_delete_ok_then_cancels():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(name("deleted"), auto_delete=False)
        await ch.default_exchange.publish(aio_pika.Message(b"left"), q.name)
        got = asyncio.get_running_loop().create_future()

        async def on_message(message):
            got.set_result(message.body)

        await q.consume(on_message, no_ack=True)
        assert await asyncio.wait_for(got, 5) == b"left"
        result = await q.delete(if_unused=False, if_empty=False)
        assert result.message_count == 0
        # The channel stays usable after the server's basic.cancel.
        q2 = await ch.declare_queue(exclusive=True)
        assert q2.name


@run_async
async def test_direct_reply_to_round_trip():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        server_ch = await conn.channel()
        requests = await server_ch.declare_queue(exclusive=True)

        async def serve(message):
            async with message.process():
                assert message.reply_to.startswith("amq.rabbitmq.reply-to.")
                await server_ch.default_exchange.publish(
                    aio_pika.Message(message.body.upper(), correlation_id=message.correlation_id),
                    message.reply_to,
                )

        await requests.consume(serve)

        client_ch = await conn.channel()
        reply_to = await client_ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
        replies = asyncio.get_running_loop().create_future()

        async def on_reply(message):
            replies.set_result((message.body, message.correlation_id))

        await reply_to.consume(on_reply, no_ack=True)
        await client_ch.default_exchange.publish(
            aio_pika.Message(b"ping", reply_to="amq.rabbitmq.reply-to", correlation_id="c1"),
            requests.name,
        )
        assert await asyncio.wait_for(replies, 5) == (b"PING", "c1")


@run_async
async def test_cc_adds_routing_keys_and_bcc_is_stripped():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(name("cc"), aio_pika.ExchangeType.DIRECT, auto_delete=True)
        queues = {}
        for key in ("a", "b", "c"):
            queues[key] = await ch.declare_queue(exclusive=True)
            await queues[key].bind(ex, key)
        await ex.publish(aio_pika.Message(b"m", headers={"CC": ["b"], "BCC": ["c"]}), "a")
        for key in ("a", "b", "c"):
            msg = await queues[key].get(timeout=5, no_ack=True)
            assert msg.body == b"m"
            assert "BCC" not in msg.headers
            assert msg.headers["CC"] == ["b"]


@run_async
async def test_global_prefetch_is_shared_by_the_channels_consumers():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=3, global_=True)
        received = []
        for _ in range(2):
            q = await ch.declare_queue(exclusive=True)
            for i in range(5):
                await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), q.name)

            async def hold(message):
                received.append(message)  # never acked

            await q.consume(hold)
        await asyncio.sleep(0.5)
        assert len(received) == 3


@run_async
async def test_quorum_queue_counts_deliveries():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(
            name("quorum"), durable=True, arguments={"x-queue-type": "quorum"}
        )
        try:
            await ch.default_exchange.publish(aio_pika.Message(b"q"), q.name)
            first = await q.get(timeout=5)
            # RabbitMQ 3.10 sends x-delivery-count 0 on the first delivery.
            assert (first.headers or {}).get("x-delivery-count", 0) == 0
            await first.reject(requeue=True)
            second = await q.get(timeout=5)
            assert second.redelivered
            assert second.headers["x-delivery-count"] == 1
            await second.ack()
        finally:
            await q.delete(if_unused=False, if_empty=False)


@run_async
async def test_stream_consumer_starts_at_an_offset():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.declare_queue(
            name("stream"), durable=True, arguments={"x-queue-type": "stream"}
        )
        try:
            for i in range(5):
                await ch.default_exchange.publish(aio_pika.Message(b"s%d" % i), q.name)
            got = await collect(q, 3, no_ack=False, arguments={"x-stream-offset": 2})
            assert [m.body for m in got] == [b"s2", b"s3", b"s4"]
            assert [m.headers["x-stream-offset"] for m in got] == [2, 3, 4]
            for m in got:
                await m.ack()
        finally:
            await q.delete(if_unused=False, if_empty=False)


@run_async
async def test_unknown_exchange_closes_the_channel_with_404():
    conn = await aio_pika.connect(AMQP_URL)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await ch.get_exchange(name("missing"), ensure=True)
