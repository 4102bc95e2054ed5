"""https deliveries: the socket goes to the address checked, while TLS still names and
verifies the URL's host (SNI and the certificate), against a real TLS receiver."""

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from billing.models import Event
from billing.outbox import event_record
from tests.factories import make_account
from tests.webhooks.conftest import deliver_all, endpoint_for
from webhooks.models import WebhookAttempt
from webhooks.sending import tls_context

pytestmark = pytest.mark.django_db


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject, issuer, key, signer, *, ca: bool, names=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch, receiver):
    """A receiver with a certificate for "localhost" only, from a CA the sender trusts."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert(_name("tests CA"), _name("tests CA"), ca_key, ca_key, ca=True)
    leaf = _cert(
        _name("localhost"), ca.subject, key, ca_key, ca=False, names=[x509.DNSName("localhost")]
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    tls_context.cache_clear()
    yield receiver(tls=server)
    tls_context.cache_clear()


def test_https_names_the_host_while_connecting_to_its_checked_address(tls_receiver):
    by_name = tls_receiver
    endpoint_for(by_name, [Event.Type.METER_OFFLINE], url=by_name.url_for("localhost"))
    # The same receiver by its address: the certificate does not name 127.0.0.1.
    endpoint_for(by_name, [Event.Type.METER_OFFLINE], url=by_name.url_for("127.0.0.1"))
    account = make_account()
    event = event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)

    deliver_all()

    [request] = by_name.delivered()
    assert request.webhook_id == event.public_id and request.verified
    assert request.headers["host"] == f"localhost:{by_name.port}"
    errors = dict(WebhookAttempt.objects.values_list("endpoint__url", "error"))
    assert errors[by_name.url_for("localhost")] == ""
    refused = errors[by_name.url_for("127.0.0.1")]
    assert refused.startswith("TLS: ") and "127.0.0.1" in refused
