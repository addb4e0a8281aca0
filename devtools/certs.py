"""Throwaway X.509 material for a local Kubernetes control plane (pure functions, no I/O).

Everything here is for tests on loopback: one self-signed CA signs the serving certificates of
kube-apiserver and kube-controller-manager and the client certificates that identify users to the
API server.  Kubernetes maps a client certificate's subject Common Name to the user name and its
Organization entries to groups (see "X509 client certificates" in the Kubernetes authentication
docs), so ``issue_certificate(ca, "admin", organizations=["system:masters"])`` yields a
cluster-admin identity.

Keys are ECDSA P-256: quick to generate and accepted by every component, including for
ServiceAccount token signing (ES256, RFC 7518 section 3.4).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["KeyPair", "generate_ca", "generate_signing_key", "issue_certificate"]

#: Validity of every generated certificate; test clusters live minutes, a day leaves slack for clock skew.
DEFAULT_VALIDITY = dt.timedelta(days=1)


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate, both PEM-encoded.

    ``key_pem`` is an unencrypted PKCS#8 private key; ``cert_pem`` is the X.509 certificate.
    ``key`` and ``cert`` keep the parsed objects so a CA can sign further certificates.
    """

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return _private_pem(self.key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _validity(now: dt.datetime | None, validity: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    return start, start + validity


def generate_ca(
    common_name: str = "game-analytics-test-ca",
    *,
    validity: dt.timedelta = DEFAULT_VALIDITY,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Return a new self-signed certificate authority (basicConstraints CA:TRUE, keyCertSign)."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(now, validity)
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key=key, cert=cert)


def issue_certificate(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    server: bool = False,
    client: bool = False,
    validity: dt.timedelta = DEFAULT_VALIDITY,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Return a leaf certificate signed by ``ca``.

    ``server`` adds the serverAuth extended key usage and requires at least one DNS name or IP
    address (the subjectAltName a TLS client checks); ``client`` adds clientAuth.  At least one of
    the two must be set.  ``organizations`` become the subject's O= entries (Kubernetes groups).

    Raises ``ValueError`` on a certificate that would be unusable.
    """
    dns = list(dns_names)
    ips = [ipaddress.ip_address(ip) for ip in ip_addresses]
    if not (server or client):
        raise ValueError("a certificate needs server=True, client=True or both")
    if server and not (dns or ips):
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(now, validity)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if dns or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ip) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(key=key, cert=builder.sign(ca.key, hashes.SHA256()))


def generate_signing_key() -> tuple[bytes, bytes]:
    """Return ``(private_pem, public_pem)`` of a new P-256 key for ServiceAccount token signing.

    kube-apiserver signs tokens with the private key (``--service-account-signing-key-file``) and
    verifies them with the public one (``--service-account-key-file``); kube-controller-manager
    takes the private key (``--service-account-private-key-file``).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _private_pem(key), public
