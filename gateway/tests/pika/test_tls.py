"""AMQPS through pika's ssl_options: the gateway's TLS listener (made by
with_ringmq.sh: AMQPS_PORT, and TLS_DIR with a CA made for the run) serves
a client that trusts the CA as the plain listener does; a plain client on
the TLS port, a client trusting another CA, an expired client certificate
and one another CA signed are refused with errors, never a hang. EXTERNAL
(pika's ExternalCredentials) logs in as the user the client certificate
names, through the gateway's vouching user (with_ringmq.sh makes it);
an unknown name, a missing certificate and the plain listener are refused.
Skipped without AMQPS_PORT (RabbitMQ's anchor has no TLS listener)."""
import datetime
import os
import ssl

import pika
import pika.exceptions
import pytest

from conftest import make_params, mgmt_api

AMQPS_PORT = os.environ.get("AMQPS_PORT")
TLS_DIR = os.environ.get("TLS_DIR")
pytestmark = pytest.mark.skipif(not AMQPS_PORT, reason="needs the gateway's AMQPS listener (AMQPS_PORT)")


def ca_file():
    return os.path.join(TLS_DIR, "ca.pem")


def make_cert(tmp_path, cn, expired=False, own_ca=False):
    """A client certificate for `cn` signed by the run's CA (or by a fresh
    CA nothing trusts); (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    if own_ca:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger CA")])
    else:
        with open(os.path.join(TLS_DIR, "ca.key"), "rb") as f:
            issuer_key = serialization.load_pem_private_key(f.read(), None)
        with open(ca_file(), "rb") as f:
            issuer = x509.load_pem_x509_certificate(f.read()).subject
    start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired else (
        now - datetime.timedelta(minutes=5),
        now + datetime.timedelta(days=1),
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(issuer_key, hashes.SHA256())
    )
    c, k = tmp_path / f"{cn}.crt", tmp_path / f"{cn}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(c), str(k)


def tls_params(cafile=None, cert=None, **overrides):
    ctx = ssl.create_default_context(cafile=cafile or ca_file())
    if cert:
        ctx.load_cert_chain(*cert)
    return make_params(
        port=int(AMQPS_PORT),
        ssl_options=pika.SSLOptions(ctx, "localhost"),
        **overrides,
    )


def api(method, path, body=None):
    return mgmt_api(method, path, body)


def test_a_client_trusting_the_ca_works_over_tls():
    conn = pika.BlockingConnection(tls_params())
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        body = b"x" * 200_000
        ch.basic_publish("", q, b"small")
        ch.basic_publish("", q, body)
        got = [ch.basic_get(q, auto_ack=True)[2] for _ in range(2)]
        assert got == [b"small", body]
    finally:
        conn.close()


def test_a_client_certificate_the_ca_signed_is_accepted(tmp_path):
    conn = pika.BlockingConnection(tls_params(cert=make_cert(tmp_path, "guest")))
    assert conn.is_open
    conn.close()


def test_a_plain_client_on_the_tls_port_is_refused():
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(make_params(port=int(AMQPS_PORT)))


def test_a_client_trusting_another_ca_refuses_the_server(tmp_path):
    # Trusting only a certificate of another issuer: the gateway's chain
    # does not verify (pika reports CERTIFICATE_VERIFY_FAILED).
    cert, _ = make_cert(tmp_path, "someone", own_ca=True)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLCertVerificationError)) as e:
        pika.BlockingConnection(tls_params(cafile=cert))
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value) or isinstance(
        e.value, pika.exceptions.AMQPConnectionError
    ), str(e.value)


@pytest.mark.parametrize("kind", ["expired", "unknown CA"])
def test_a_bad_client_certificate_is_refused(tmp_path, kind):
    cert = make_cert(tmp_path, "guest", expired=kind == "expired", own_ca=kind == "unknown CA")
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        conn = pika.BlockingConnection(tls_params(cert=cert))
        # TLS 1.3: the server's verdict on the client certificate arrives
        # after the client's handshake completes; the first round trip
        # reveals it.
        conn.channel()


EXTERNAL_USER = "tls_ext_user"


@pytest.fixture
def external_user():
    """A user with no password and permissions on "/" (removed after)."""
    assert api("PUT", f"/users/{EXTERNAL_USER}", {"password_hash": "", "tags": ""})[0] in (201, 204)
    status, _ = api("PUT", f"/permissions/%2F/{EXTERNAL_USER}", {"configure": ".*", "write": ".*", "read": ".*"})
    assert status in (201, 204)
    yield EXTERNAL_USER
    api("DELETE", f"/users/{EXTERNAL_USER}")


def test_external_logs_in_as_the_user_the_certificate_names(tmp_path, external_user):
    params = tls_params(cert=make_cert(tmp_path, external_user), credentials=pika.credentials.ExternalCredentials())
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        # user_id must be the connection's user, or the channel closes.
        ch.basic_publish("", q, b"hi", pika.BasicProperties(user_id=external_user))
        method, props, body = ch.basic_get(q, auto_ack=True)
        assert (props.user_id, body) == (external_user, b"hi")
        _, conns = api("GET", "/connections")
        mine = [c for c in conns if c["user"] == external_user]
        assert [c["auth_mechanism"] for c in mine] == ["EXTERNAL"], conns
    finally:
        conn.close()


def test_external_is_refused_for_an_unknown_user_or_without_a_certificate(tmp_path):
    external = pika.credentials.ExternalCredentials()
    for cert in [make_cert(tmp_path, "no_such_tls_user"), None]:
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
            pika.BlockingConnection(tls_params(cert=cert, credentials=external))
        assert "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL" in str(e.value)


def test_external_is_not_offered_on_the_plain_listener():
    with pytest.raises(pika.exceptions.AuthenticationError):
        pika.BlockingConnection(make_params(credentials=pika.credentials.ExternalCredentials()))
