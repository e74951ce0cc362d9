"""AMQPS through pika's ssl_options: the gateway's TLS listener (made by
with_ringmq.sh: AMQPS_PORT, and TLS_DIR with a CA made for the run) serves
a client that trusts the CA as the plain listener does; a plain client on
the TLS port, a client trusting another CA, an expired client certificate
and one another CA signed are refused with errors, never a hang.
Skipped without AMQPS_PORT (RabbitMQ's anchor has no TLS listener)."""
import datetime
import os
import ssl

import pika
import pika.exceptions
import pytest

from conftest import make_params

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


def tls_params(cafile=None, cert=None):
    ctx = ssl.create_default_context(cafile=cafile or ca_file())
    if cert:
        ctx.load_cert_chain(*cert)
    return make_params(
        port=int(AMQPS_PORT),
        ssl_options=pika.SSLOptions(ctx, "localhost"),
    )


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
