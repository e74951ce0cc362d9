"""Headers exchange (x-match all/any) and alternate exchanges."""
import pika
import pika.exceptions
import pytest


def _bound_queue(ch, exchange, arguments=None, routing_key=''):
    q = ch.queue_declare('', exclusive=True).method.queue
    ch.queue_bind(q, exchange, routing_key=routing_key, arguments=arguments)
    return q


def test_headers_exchange_x_match_all_and_any(conn, unique, drain):
    ch = conn.channel()
    hx = unique("hdrs")
    ch.exchange_declare(hx, 'headers')
    q_all = _bound_queue(ch, hx, {'x-match': 'all', 'format': 'pdf', 'type': 'report'})
    q_any = _bound_queue(ch, hx, {'x-match': 'any', 'format': 'pdf', 'type': 'report'})
    q_default = _bound_queue(ch, hx, {'format': 'zip'})  # no x-match -> 'all'

    messages = [
        ('both', {'format': 'pdf', 'type': 'report'}),
        ('both+extra', {'format': 'pdf', 'type': 'report', 'other': 1}),
        ('format-only', {'format': 'pdf'}),
        ('type-only', {'type': 'report'}),
        ('wrong-value', {'format': 'doc', 'type': 'log'}),
        ('zip', {'format': 'zip'}),
        ('none', None),
    ]
    for body, headers in messages:
        # the routing key is ignored by a headers exchange
        ch.basic_publish(hx, 'ignored-key', body, pika.BasicProperties(headers=headers))

    def bodies(q):
        return [b.decode() for _, _, b in drain(ch, q)]

    assert bodies(q_all) == ['both', 'both+extra']
    assert bodies(q_any) == ['both', 'both+extra', 'format-only', 'type-only']
    assert bodies(q_default) == ['zip']


def test_headers_exchange_match_value_types(conn, unique, drain):
    ch = conn.channel()
    hx = unique("hdrs")
    ch.exchange_declare(hx, 'headers')
    q = _bound_queue(ch, hx, {'x-match': 'all', 'n': 1, 'flag': True})
    ch.basic_publish(hx, '', b'match', pika.BasicProperties(headers={'n': 1, 'flag': True}))
    ch.basic_publish(hx, '', b'string-1', pika.BasicProperties(headers={'n': '1', 'flag': True}))
    ch.basic_publish(hx, '', b'n-2', pika.BasicProperties(headers={'n': 2, 'flag': True}))
    assert [b for _, _, b in drain(ch, q)] == [b'match']


def test_alternate_exchange_receives_unroutable(conn, unique, drain):
    ch = conn.channel()
    ae = unique("ae")
    main = unique("main")
    ch.exchange_declare(ae, 'fanout')
    ch.exchange_declare(main, 'direct', arguments={'alternate-exchange': ae})
    q_ae = _bound_queue(ch, ae)
    q_main = _bound_queue(ch, main, routing_key='known')

    ch.confirm_delivery()
    ch.basic_publish(main, 'known', b'routed')
    # mandatory is satisfied by the alternate exchange: no UnroutableError
    ch.basic_publish(main, 'unknown', b'to-ae', mandatory=True)
    ch.basic_publish(main, 'other', b'to-ae-2')

    assert [b for _, _, b in drain(ch, q_main)] == [b'routed']
    got = drain(ch, q_ae)
    assert [b for _, _, b in got] == [b'to-ae', b'to-ae-2']
    # delivered with the original exchange and routing key
    assert [(m.exchange, m.routing_key) for m, _, _ in got] == [(main, 'unknown'), (main, 'other')]


def test_alternate_exchange_without_bindings_returns_mandatory(conn, unique):
    ch = conn.channel()
    ae = unique("ae")
    main = unique("main")
    ch.exchange_declare(ae, 'fanout')  # nothing bound to the AE either
    ch.exchange_declare(main, 'direct', arguments={'alternate-exchange': ae})
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as exc:
        ch.basic_publish(main, 'unknown', b'x', mandatory=True)
    assert exc.value.messages[0].method.reply_code == 312
    assert exc.value.messages[0].method.routing_key == 'unknown'
