"""Services reach NATS over TLS with their own credentials (issue #9): a real nats-server with a
self-signed certificate and the generated accounts, and the registration service answering through it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import nats
import nats.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iioe.access import OPERATOR_USER, partner_user, service_user
from iioe.runtime.nats import connect, provision_streams
from iioe.runtime.settings import NatsAuthOptions
from iioe_tools.embedded import EmbeddedNats, free_port
from iioe_tools.nats_auth import NatsAuth
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iioe-test-nats")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_services_connect_over_tls_and_plain_text_is_refused(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    auth = NatsAuth(tmp_path / "nats", host="127.0.0.1", port=port)
    auth.ensure_platform_users()
    auth.add_partner("must")
    cert, key = self_signed(tmp_path)
    config = json.loads(auth.config_path.read_text())
    config["tls"] = {"cert_file": str(cert), "key_file": str(key), "timeout": 2}
    auth.config_path.write_text(json.dumps(config))
    server = EmbeddedNats(tmp_path / "nats", port, config=auth.config_path).start()
    url = f"tls://127.0.0.1:{port}"
    try:
        operator = auth.credentials(OPERATOR_USER)
        nc = await connect(
            url, "test", auth=NatsAuthOptions(user=operator.user, password=operator.password, tls_ca_file=cert)
        )
        await provision_streams(nc.jetstream())
        await nc.close()
        with pytest.raises((nats.errors.Error, OSError)):  # no TLS: the server insists on it
            await nats.connect(
                f"nats://127.0.0.1:{port}",
                user=operator.user,
                password=operator.password,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )

        svc = auth.credentials(service_user("registration"))
        settings = RegistrationSettings(
            NATS_URL=url,
            DATABASE_URL=database_url,
            NATS_USER=svc.user,
            NATS_PASSWORD=svc.password,
            NATS_INBOX_PREFIX=svc.inbox_prefix,
            NATS_TLS_CA=cert,
        )
        async with running_app(create_app(settings)) as http:
            assert (await http.get("/readyz")).json()["nats"] == "ok"
            partner = auth.credentials(partner_user("must"))
            client = await nats.connect(
                url,
                user=partner.user,
                password=partner.password,
                inbox_prefix=partner.inbox_prefix or "_INBOX",
                tls=NatsAuthOptions(tls_ca_file=cert).connect_kwargs()["tls"],
            )
            body = {"full_name": "Tls Person", "email": "tls@must.edu.mn", "language": "en"}
            reply = await client.request("iioe.commands.must.register_educator", json.dumps(body).encode(), timeout=5)
            await client.close()
            assert json.loads(reply.data)["status"] == "registered"
    finally:
        server.stop()
