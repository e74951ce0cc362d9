"""Sender-selected distribution: the CC and BCC headers (arrays of long strings) add routing
keys to the publish's own; a queue gets one copy however many keys reach it; BCC is removed
before the message is stored or delivered (CC stays). A CC/BCC header that is not an array
closes the channel with 406 (RabbitMQ 3.10: "invalid message: {unacceptable_type_in_header,..."."""
import pika
import pika.exceptions
import pytest


def _queues(ch, unique, n):
    names = [unique("ssd") for _ in range(n)]
    for q in names:
        ch.queue_declare(q)
    return names


def _props(**headers):
    return pika.BasicProperties(headers=headers)


def _counts(ch, queues, wait_count, expected):
    for q, n in zip(queues, expected):
        wait_count(ch, q, n)


def test_cc_and_bcc_add_routing_keys_and_bcc_is_removed(conn, unique, wait_count, get_one):
    ch = conn.channel()
    q1, q2, q3, q4 = _queues(ch, unique, 4)
    ch.basic_publish('', q1, b'hello', _props(CC=[q2], BCC=[q3], other='kept'))
    _counts(ch, [q1, q2, q3, q4], wait_count, [1, 1, 1, 0])
    for q in (q1, q2, q3):
        method, props, body = get_one(ch, q)
        assert body == b'hello'
        # every copy keeps the publish's exchange and routing key
        assert (method.exchange, method.routing_key) == ('', q1)
        # CC is delivered as sent, BCC never
        assert props.headers == {'CC': [q2], 'other': 'kept'}


def test_bcc_is_removed_for_consumers_too(conn, unique, consume):
    ch = conn.channel()
    q1, q2 = _queues(ch, unique, 2)
    ch.basic_publish('', q1, b'secret', _props(BCC=[q2]))
    for q in (q1, q2):
        [(method, props, body)] = consume(conn, ch, q, 1)
        assert body == b'secret'
        assert method.routing_key == q1
        # the table that held only BCC arrives empty
        assert props.headers == {}


def test_a_queue_gets_one_copy(conn, unique, wait_count, drain):
    ch = conn.channel()
    q1, q2 = _queues(ch, unique, 2)
    ch.basic_publish('', q1, b'once', _props(CC=[q2, q2, q1], BCC=[q2, q1]))
    ch.basic_publish('', q1, b'end', None)
    wait_count(ch, q1, 2)
    assert [b for _, _, b in drain(ch, q1)] == [b'once', b'end']
    assert [b for _, _, b in drain(ch, q2)] == [b'once']


def test_only_long_strings_in_the_arrays_count(conn, unique, wait_count, drain):
    ch = conn.channel()
    q1, q2, q3, q4 = _queues(ch, unique, 4)
    # pika sends str as a long string ('S'), bytes as a byte array ('x'), int as 'I'
    ch.basic_publish('', q1, b'mixed', _props(CC=[q2, 5, q3.encode(), [q4], {'q': q4}]))
    ch.basic_publish('', q1, b'end', None)
    wait_count(ch, q1, 2)
    _counts(ch, [q2, q3, q4], wait_count, [1, 0, 0])
    [(_, props, body)] = drain(ch, q2)
    assert body == b'mixed'
    # the header itself is delivered unchanged
    assert props.headers['CC'][:2] == [q2, 5]


def test_header_names_are_case_sensitive(conn, unique, wait_count, get_one):
    ch = conn.channel()
    q1, q2 = _queues(ch, unique, 2)
    ch.basic_publish('', q1, b'lower', _props(cc=[q2], bcc=[q2]))
    wait_count(ch, q1, 1)
    assert ch.queue_declare(q2, passive=True).method.message_count == 0
    _, props, _ = get_one(ch, q1)
    assert props.headers == {'cc': [q2], 'bcc': [q2]}


def test_cc_keys_route_through_direct_and_topic_exchanges(conn, unique, wait_count, drain):
    ch = conn.channel()
    direct = unique("ssd-direct")
    topic = unique("ssd-topic")
    ch.exchange_declare(direct, 'direct')
    ch.exchange_declare(topic, 'topic')
    q_a, q_b, q_t = _queues(ch, unique, 3)
    ch.queue_bind(q_a, direct, 'a')
    ch.queue_bind(q_b, direct, 'b')
    ch.queue_bind(q_t, topic, 'logs.*.error')
    # the exchange routes every key; unmatched keys are fine
    ch.basic_publish(direct, 'a', b'd1', _props(CC=['b', 'nobody']))
    ch.basic_publish(direct, 'nobody', b'd2', _props(BCC=['a']))
    ch.basic_publish(topic, 'logs.x.info', b't1', _props(CC=['logs.y.error']))
    _counts(ch, [q_a, q_b, q_t], wait_count, [2, 1, 1])
    assert [b for _, _, b in drain(ch, q_a)] == [b'd1', b'd2']
    [(method, props, body)] = drain(ch, q_t)
    assert (method.routing_key, body) == ('logs.x.info', b't1')


def test_a_cc_match_keeps_the_alternate_exchange_out(conn, unique, wait_count, drain):
    ch = conn.channel()
    ae = unique("ssd-ae")
    main = unique("ssd-main")
    ch.exchange_declare(ae, 'fanout')
    ch.exchange_declare(main, 'direct', arguments={'alternate-exchange': ae})
    q_main, q_ae = _queues(ch, unique, 2)
    ch.queue_bind(q_main, main, 'known')
    ch.queue_bind(q_ae, ae, '')
    # the routing key matches nothing but a CC key does: not unroutable
    ch.basic_publish(main, 'unknown', b'cc-hit', _props(CC=['known']))
    # no key matches: the alternate exchange takes it
    ch.basic_publish(main, 'unknown', b'all-miss', _props(CC=['other'], BCC=['nope']))
    _counts(ch, [q_main, q_ae], wait_count, [1, 1])
    assert [b for _, _, b in drain(ch, q_main)] == [b'cc-hit']
    [(_, props, body)] = drain(ch, q_ae)
    assert body == b'all-miss'
    assert props.headers == {'CC': ['other']}


def test_mandatory_message_routed_only_by_bcc_is_not_returned(conn, unique, get_one):
    ch = conn.channel()
    ch.confirm_delivery()
    (q1,) = _queues(ch, unique, 1)
    # raises UnroutableError if it were returned
    ch.basic_publish('', unique("ssd-none"), b'bcc-only', _props(BCC=[q1]), mandatory=True)
    method, props, body = get_one(ch, q1)
    assert body == b'bcc-only'
    assert props.headers == {}
    # and a mandatory message no key routes is still returned
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish('', unique("ssd-none"), b'x', _props(CC=['ssd-nowhere']), mandatory=True)


@pytest.mark.parametrize("header,value,type_name", [
    ('CC', 'not-an-array', 'longstr'),
    ('BCC', 7, 'signedint'),
    ('CC', {'q': 'x'}, 'table'),
])
def test_a_header_that_is_not_an_array_closes_the_channel(conn, unique, header, value, type_name):
    ch = conn.channel()
    (q1,) = _queues(ch, unique, 1)
    ch.basic_publish('', q1, b'bad', _props(**{header: value}))
    # the publish is asynchronous; the channel close arrives on the next round-trip
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(q1, passive=True)
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f'PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,"{header}",{type_name}}}')
    # nothing was enqueued, and the connection is still usable
    assert conn.channel().queue_declare(q1, passive=True).method.message_count == 0


def test_dead_lettering_routes_with_the_cc_keys(conn, unique, wait_count, get_one):
    ch = conn.channel()
    dlx = unique("ssd-dlx")
    ch.exchange_declare(dlx, 'direct')
    src = unique("ssd-src")
    fixed = unique("ssd-src-dlrk")
    ch.queue_declare(src, arguments={'x-dead-letter-exchange': dlx})
    ch.queue_declare(fixed, arguments={'x-dead-letter-exchange': dlx,
                                       'x-dead-letter-routing-key': 'k-fixed'})
    q_src, q_cc, q_fixed = _queues(ch, unique, 3)
    ch.queue_bind(q_src, dlx, src)
    ch.queue_bind(q_cc, dlx, 'k-cc')
    ch.queue_bind(q_fixed, dlx, 'k-fixed')
    for queue, body in ((src, b'plain'), (fixed, b'dlrk')):
        ch.basic_publish('', queue, body, _props(CC=['k-cc']))
        method, _, _ = get_one(ch, queue, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
    _counts(ch, [q_src, q_cc, q_fixed], wait_count, [1, 1, 1])
    # without x-dead-letter-routing-key: the routing key and the CC keys, CC kept
    for q in (q_src, q_cc):
        method, props, body = get_one(ch, q)
        assert (body, method.routing_key) == (b'plain', src)
        assert props.headers['CC'] == ['k-cc']
        assert props.headers['x-death'][0]['routing-keys'] == [src, 'k-cc']
    # with it: that key only, and CC is removed (x-death still lists the CC keys)
    method, props, body = get_one(ch, q_fixed)
    assert (body, method.routing_key) == (b'dlrk', 'k-fixed')
    assert 'CC' not in props.headers
    assert props.headers['x-death'][0]['routing-keys'] == [fixed, 'k-cc']
