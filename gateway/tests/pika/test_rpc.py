"""RPC over AMQP: reply_to a server-named exclusive queue, matched by correlation_id."""
import uuid

import pika


def test_rpc_reply_to_and_correlation_id(new_conn, unique, pump_until):
    rpc_queue = unique("rpc_queue")

    # --- server
    server_conn = new_conn()
    server = server_conn.channel()
    server.queue_declare(queue=rpc_queue)
    server.basic_qos(prefetch_count=1)

    def on_request(ch, method, props, body):
        n = int(body)
        ch.basic_publish(exchange='',
                         routing_key=props.reply_to,
                         properties=pika.BasicProperties(correlation_id=props.correlation_id),
                         body=str(n * n))
        ch.basic_ack(delivery_tag=method.delivery_tag)

    server.basic_consume(queue=rpc_queue, on_message_callback=on_request)

    # --- client
    client_conn = new_conn()
    client = client_conn.channel()
    result = client.queue_declare(queue='', exclusive=True)
    callback_queue = result.method.queue
    assert callback_queue.startswith('amq.gen-')
    responses = {}

    def on_response(ch, method, props, body):
        responses[props.correlation_id] = body

    client.basic_consume(queue=callback_queue, on_message_callback=on_response, auto_ack=True)

    calls = {}
    for n in (3, 7, 12):
        corr_id = str(uuid.uuid4())
        calls[corr_id] = n
        client.basic_publish(exchange='',
                             routing_key=rpc_queue,
                             properties=pika.BasicProperties(reply_to=callback_queue,
                                                             correlation_id=corr_id),
                             body=str(n))

    pump_until(lambda: len(responses) == len(calls), server_conn, client_conn)
    assert {c: int(responses[c]) for c in calls} == {c: n * n for c, n in calls.items()}
