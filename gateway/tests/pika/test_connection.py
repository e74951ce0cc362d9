"""Connection-level behaviour: authentication, vhosts, tuning, heartbeats, close."""
import time

import pika
import pika.exceptions
import pytest


def test_wrong_password_probable_authentication_error(params_factory):
    params = params_factory(credentials=pika.PlainCredentials('guest', 'wrong-password'))
    # RabbitMQ answers a bad login with connection.close 403 ACCESS_REFUSED (it honours the
    # client's authentication_failure_close capability); pika surfaces that as
    # ProbableAuthenticationError (AuthenticationError is only for an unsupported mechanism).
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as exc:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(exc.value)


def test_unknown_user_probable_authentication_error(params_factory):
    params = params_factory(credentials=pika.PlainCredentials('no-such-user', 'x'))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as exc:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(exc.value)


def test_unknown_vhost_probable_access_denied_error(params_factory):
    params = params_factory(virtual_host='no-such-vhost')
    # RabbitMQ closes the connection on connection.open with 530 NOT_ALLOWED
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as exc:
        pika.BlockingConnection(params)
    assert "530" in str(exc.value)
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in str(exc.value)


def test_server_properties_advertise_capabilities(conn):
    caps = conn._impl.server_properties['capabilities']
    # RabbitMQ 3.10 announces exactly these, all true (test_direct_reply_to.py covers
    # direct_reply_to).
    expected = {'publisher_confirms', 'basic.nack', 'consumer_cancel_notify',
                'exchange_exchange_bindings', 'authentication_failure_close',
                'connection.blocked', 'per_consumer_qos', 'consumer_priorities',
                'direct_reply_to'}
    assert set(caps) == expected
    for cap in expected:
        assert caps[cap] is True, cap


def test_server_tune_proposes_heartbeat(params_factory):
    proposed = []

    def accept_server_value(connection, server_value):
        proposed.append(server_value)
        return server_value

    c = pika.BlockingConnection(params_factory(heartbeat=accept_server_value))
    try:
        assert len(proposed) == 1
        # RabbitMQ 3.10 proposes heartbeat=60 s by default
        assert isinstance(proposed[0], int) and proposed[0] > 0
        assert c._impl.params.heartbeat == proposed[0]
    finally:
        c.close()


def test_heartbeat_one_second_idle_connection_stays_open(params_factory):
    c = pika.BlockingConnection(params_factory(heartbeat=1))
    try:
        assert c._impl.params.heartbeat == 1  # client value wins in tune-ok
        ch = c.channel()
        # idle for ~3.5 s (> 2 heartbeat intervals) while servicing I/O
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            c.process_data_events(time_limit=0.25)
        c.sleep(0.5)
        assert c.is_open and ch.is_open
        checker = getattr(c._impl, '_heartbeat_checker', None)
        if checker is not None and hasattr(checker, '_heartbeat_frames_received'):
            # the broker sends heartbeats every timeout/2 = 0.5 s
            assert checker._heartbeat_frames_received >= 2
        # and the connection is still usable
        q = ch.queue_declare('', exclusive=True).method.queue
        ch.basic_publish('', q, b'alive')
        deadline = time.monotonic() + 5
        while True:
            method, _, body = ch.basic_get(q, auto_ack=True)
            if method or time.monotonic() > deadline:
                break
        assert body == b'alive'
    finally:
        if c.is_open:
            c.close()


def test_negotiated_limits(conn):
    params = conn._impl.params
    # RabbitMQ 3.10 proposes frame_max=131072 and channel_max=2047
    assert params.frame_max >= 4096
    assert params.channel_max > 0


def test_many_channels_on_one_connection(conn):
    channels = [conn.channel() for _ in range(20)]
    assert len({ch.channel_number for ch in channels}) == 20
    for ch in channels:
        ch.queue_declare('', exclusive=True)
    for ch in channels:
        ch.close()
    assert conn.is_open


def test_connection_close_is_clean(params_factory):
    c = pika.BlockingConnection(params_factory())
    ch = c.channel()
    ch.queue_declare('', exclusive=True)
    c.close()
    assert c.is_closed
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare('', exclusive=True)


def test_update_secret_is_accepted_as_rabbitmq_does(params_factory):
    # connection.update-secret (token refresh): RabbitMQ 3.10 with its internal
    # user database answers update-secret-ok and the connection carries on.
    conn = pika.BlockingConnection(params_factory())
    try:
        ch = conn.channel()
        conn.update_secret('guest', 'token refresh')
        conn.process_data_events(time_limit=0.5)
        assert conn.is_open
        q = ch.queue_declare('', exclusive=True).method.queue
        ch.basic_publish('', q, b'after refresh')
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert body == b'after refresh'
    finally:
        if conn.is_open:
            conn.close()
