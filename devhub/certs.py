"""The dev hub's CA and TLS server certificate, made on first start.

Both use EC P-256. The CA lives ten years and is reused; the server
certificate is reissued whenever it no longer names the hub's addresses or
nears expiry, so moving a state dir to another bind address just works.
"""

import datetime
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LOGGER = logging.getLogger(__name__)

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=30)
# Tolerate clocks slightly behind the hub's when the cert is brand new.
BACKDATE = datetime.timedelta(days=1)
KEY_FILE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Where the hub's PEM files live."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, state_dir: Path) -> "CertPaths":
        """Return the standard file names inside ``state_dir``."""
        return cls(
            ca_cert=state_dir / "ca.pem",
            ca_key=state_dir / "ca.key",
            server_cert=state_dir / "server.pem",
            server_key=state_dir / "server.key",
        )


def ensure_certificates(
    paths: CertPaths,
    *,
    dns_names: list[str],
    ip_addresses: list[str],
    now: datetime.datetime,
) -> None:
    """Create the CA and server certificate if missing, stale or mismatched.

    Args:
        paths: Where to read and write the PEM files.
        dns_names: DNS names the server certificate must carry.
        ip_addresses: IP addresses the server certificate must carry.
        now: The current UTC time.
    """
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        _create_ca(paths, now)
    if not _server_cert_fits(paths, dns_names, ip_addresses, now):
        _create_server_cert(paths, dns_names, ip_addresses, now)


def _create_ca(paths: CertPaths, now: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pitwin dev hub CA")])
    cert = (
        _builder(name, name, key.public_key(), now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(paths.ca_key, key)
    paths.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _LOGGER.info("CA certificate created path=%s", paths.ca_cert)


def _create_server_cert(
    paths: CertPaths, dns_names: list[str], ips: list[str], now: datetime.datetime
) -> None:
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{paths.ca_key} is not an EC key; delete the CA files")
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(_sans(dns_names, ips)), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.server_key, key)
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _LOGGER.info(
        "server certificate created dns=%s ip=%s",
        ",".join(dns_names),
        ",".join(ips),
    )


def _server_cert_fits(
    paths: CertPaths, dns_names: list[str], ips: list[str], now: datetime.datetime
) -> bool:
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    if cert.issuer != ca_cert.subject:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return set(_sans(dns_names, ips)) <= set(names.value)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    lifetime: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(dns_names: list[str], ips: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return names


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create with 0600 from the start, so the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    path.chmod(KEY_FILE_MODE)
