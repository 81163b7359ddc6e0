"""Signing the CAP the centre publishes with its own key (``[cap] signing_key`` / ``signing_cert``).

The signature is enveloped, the last child of ``<alert>`` (where the CAP 1.2 schema allows
XML-DSig), covers the whole alert (``<Reference URI="">``), and uses RSA-SHA256 (or
ECDSA-SHA256 for an EC key) with a SHA-256 digest and exclusive canonicalisation. The
certificate (and any chain in the same PEM file) travels in ``KeyInfo/X509Data``, so a partner
who trusts the centre's certificate or its CA can verify it with
:func:`warnpub.cap.signature.verify_cap_signature` or any XML-DSig library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod

from warnpub.cap.certs import (
    CertificateFileError,
    file_stamp,
    load_certificates,
    load_private_key,
)
from warnpub.cap.safe_xml import hardened_parser
from warnpub.config import Settings


@dataclass(frozen=True, eq=False)
class CapSigner:
    """The centre's key and certificate chain (the signing certificate first)."""

    key: PrivateKeyTypes
    certs: Sequence[x509.Certificate]

    def __post_init__(self) -> None:
        if not isinstance(self.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CertificateFileError("[cap] signing_key: use an RSA or EC private key")
        if not self.certs:
            raise CertificateFileError("[cap] signing_cert: no certificate given")
        if _spki(self.certs[0].public_key()) != _spki(self.key.public_key()):
            raise CertificateFileError(
                "[cap] signing_cert: the first certificate does not belong to signing_key"
            )

    @property
    def subject(self) -> str:
        return self.certs[0].subject.rfc4514_string()

    def sign(self, document: bytes) -> bytes:
        """``document`` (an unsigned CAP alert) with the centre's enveloped signature added."""
        root = etree.fromstring(document, parser=hardened_parser())
        method = (
            SignatureMethod.RSA_SHA256
            if isinstance(self.key, rsa.RSAPrivateKey)
            else SignatureMethod.ECDSA_SHA256
        )
        signer = XMLSigner(
            method=methods.enveloped,
            signature_algorithm=method,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signed = signer.sign(root, key=self.key, cert=list(self.certs))
        result: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return result


def signer_for(settings: Settings) -> CapSigner | None:
    """The centre's signer when ``signing_key`` and ``signing_cert`` are configured, else None.

    The files are read again only when they change; a file that cannot be used raises
    :class:`~warnpub.cap.certs.CertificateFileError` naming the key."""
    cap = settings.cap
    if not (cap.signing_key and cap.signing_cert):
        return None
    return _signer(
        file_stamp(cap.signing_key, "signing_key"), file_stamp(cap.signing_cert, "signing_cert")
    )


@lru_cache(maxsize=4)
def _signer(key_file: tuple[str, int, int], cert_file: tuple[str, int, int]) -> CapSigner:
    key = load_private_key(key_file[0])
    return CapSigner(key, tuple(load_certificates([cert_file[0]], key="signing_cert")))


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    result: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return result
