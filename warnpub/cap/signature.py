"""Enveloped XML signatures in incoming CAP: verified with signxml when present.

A CAP 1.2 ``<alert>`` may end with one or more XML-DSig ``<Signature>`` elements. Each one is
checked on its own, the way CAP distributors sign (NAADS and Environment Canada each sign the
bare alert; google/cap-library verifies them the same way): the other signatures are set
aside, and the remaining one must

* cover the whole alert: exactly one ``<Reference URI="">`` with the enveloped-signature
  transform (a signature over a part of the document proves nothing about the rest);
* follow the XML-DSig schema (an ``Id`` that is not an XML name, as NAADS writes it, is
  tolerated);
* use SHA-256 or stronger (SHA-1 only with ``allow_sha1``, for archived messages);
* verify with the public key of its X.509 certificate (``KeyInfo/X509Data``), or of a trusted
  certificate when the signature carries none, valid at the time of the check;
* match the content: the digest of the alert.

The signer is *trusted* when its certificate is one of the configured trusted certificates or
chains to one of them (``[cap] trusted_certs``). A message is valid when every signature
verifies and, when trusted certificates are configured, at least one signer is trusted. With
none configured, signatures are checked for integrity only, and the status says so.
"""

from __future__ import annotations

import binascii
import hashlib
import threading
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from lxml import etree
from signxml import (
    DigestAlgorithm,
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignatureConfiguration,
    SignatureMethod,
    VerifyResult,
    XMLVerifier,
)
from signxml.algorithms import CanonicalizationMethod

from warnpub.cap.certs import fingerprint
from warnpub.cap.elements import DSIG_NS
from warnpub.cap.safe_xml import hardened_parser, parse_untrusted_xml
from warnpub.clock import utcnow

SIGNATURE_TAG = f"{{{DSIG_NS}}}Signature"
_NS = {"ds": DSIG_NS}
_SCHEMA_LOCK = threading.Lock()  # an lxml XMLSchema keeps its error log on itself


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """What the signatures of one CAP document say.

    ``present``: the alert carries at least one ``<Signature>``; ``valid``: every signature
    verifies and (when trusted certificates are given) a trusted signer signed it; ``signer``:
    the subject of the signing certificate (the trusted one when there is one); ``reason``: in
    plain words why it is or is not valid; ``trusted``: a trusted certificate vouches for the
    signer; ``count``: how many signatures there are.
    """

    present: bool
    valid: bool
    signer: str | None = None
    reason: str = ""
    trusted: bool = False
    count: int = 0

    @property
    def summary(self) -> str:
        """One phrase for reports: "no signature", "signature verified (…)", "signature NOT …"."""
        if not self.present:
            return "no signature"
        noun = "signature" if self.count == 1 else f"{self.count} signatures"
        if not self.valid:
            return f"{noun} NOT verified: {self.reason}"
        if self.trusted:
            return f"{noun} verified, signed by trusted {self.signer}"
        return f"{noun} verified (integrity only: {self.reason}), signed by {self.signer}"


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    reason: str = ""
    cert: x509.Certificate | None = None  # the signing certificate, when there is one
    key: bytes = b""  # the verifying public key (DER SubjectPublicKeyInfo)
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def signer(self) -> str | None:
        if self.cert is not None:
            return _subject(self.cert)
        if self.key:
            return f"a bare public key (SHA-256 {hashlib.sha256(self.key).hexdigest()[:16]}…)"
        return None


class _Verifier(XMLVerifier):
    """signxml's verifier, with inclusive canonicalisation of a subtree done on a copy.

    libxml2 2.14 writes a spurious ``xmlns=""`` on the grandchildren of a subtree it
    canonicalises inclusively (``<SignedInfo>``'s ``<Transforms>``), which breaks signatures
    that declare inclusive C14N 1.0, such as NAADS's. A detached copy of the subtree keeps every
    in-scope namespace declaration and canonicalises correctly.
    """

    def _c14n(
        self,
        nodes: object,
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        exclusive = algorithm.value.startswith("http://www.w3.org/2001/10/xml-exc-c14n#")
        if not exclusive:
            items = nodes if isinstance(nodes, list) else [nodes]
            nodes = [_detached(node) for node in items]
        result: bytes = super()._c14n(nodes, algorithm, inclusive_ns_prefixes)
        return result


def _detached(node: object) -> object:
    if isinstance(node, etree._Element) and node.getparent() is not None:
        return etree.fromstring(etree.tostring(node, with_tail=False), parser=hardened_parser())
    return node


def verify_cap_signature(
    data: bytes,
    trusted_certs: Sequence[x509.Certificate] = (),
    *,
    at: datetime | None = None,
    allow_sha1: bool = False,
) -> SignatureStatus:
    """Verify every enveloped signature of the CAP document ``data``.

    ``trusted_certs``: certificates of trusted signers or of CAs that issue them; ``at``: the
    time certificates must be valid at (default now); ``allow_sha1``: accept RSA-SHA1 and SHA-1
    digests (archived messages only). Raises a 400 :class:`~warnpub.problems.Problem` when the
    bytes are not safe, well-formed XML (as :func:`~warnpub.cap.parse_cap_xml` does)."""
    root = parse_untrusted_xml(data)
    signatures = _signatures(root)
    if not signatures:
        return SignatureStatus(present=False, valid=False, reason="the alert carries no signature")
    when = at or utcnow()
    outcomes = [
        _verify_one(root, index, trusted_certs, when, allow_sha1)
        for index in range(len(signatures))
    ]
    count = len(outcomes)
    for index, outcome in enumerate(outcomes):
        if not outcome.ok:
            where = f"signature {index + 1} of {count}{_label(signatures[index])}: "
            reason = (where if count > 1 else "") + outcome.reason
            return SignatureStatus(True, False, outcome.signer, reason, count=count)
    if not trusted_certs:
        reason = "no trusted certificates are configured, so the signer is not checked"
        return SignatureStatus(True, True, outcomes[0].signer, reason, count=count)
    for outcome in outcomes:
        if _is_trusted(outcome, trusted_certs, when):
            reason = "signed by a trusted certificate"
            return SignatureStatus(True, True, outcome.signer, reason, True, count)
    names = "; ".join(outcome.signer or "?" for outcome in outcomes)
    reason = f"signed by {names}, which no trusted certificate vouches for"
    return SignatureStatus(True, False, outcomes[0].signer, reason, count=count)


def _signatures(root: etree._Element) -> list[etree._Element]:
    return [child for child in root if child.tag == SIGNATURE_TAG]


def _label(signature: etree._Element) -> str:
    ident = signature.get("Id")
    return f" (Id {ident!r})" if ident else ""


def _subject(cert: x509.Certificate | None) -> str | None:
    if cert is None:
        return None
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def _verify_one(
    root: etree._Element,
    index: int,
    trusted: Sequence[x509.Certificate],
    at: datetime,
    allow_sha1: bool,
) -> _Outcome:
    document = _alone(root, index)
    signature = _signatures(document)[0]
    problem = _structure_problem(signature)
    if problem:
        return _Outcome(False, problem)
    try:
        embedded = _embedded_certificates(signature)
    except ValueError as exc:
        return _Outcome(False, str(exc))
    config = _configuration(at, allow_sha1)
    if not embedded and signature.find("ds:KeyInfo/ds:KeyValue", _NS) is not None:
        return _check_bare_key(document, config)
    candidates = embedded or list(trusted)
    if not candidates:
        return _Outcome(
            False,
            "the signature carries no key (KeyInfo/X509Data/X509Certificate or KeyValue) and "
            "no trusted certificate is configured to check it with",
        )
    failures: list[str] = []
    for cert in candidates:
        failure = _check(document, cert, config, at)
        if failure is None:
            return _Outcome(True, cert=cert, key=_spki(cert), chain=tuple(embedded))
        failures.append(failure)
    return _Outcome(False, _most_telling(failures), cert=embedded[0] if embedded else None)


def _alone(root: etree._Element, index: int) -> etree._Element:
    """A copy of the document with every signature but the ``index``-th set aside."""
    copy = etree.fromstring(etree.tostring(root), parser=hardened_parser())
    for position, signature in enumerate(_signatures(copy)):
        if position != index:
            _remove_keeping_tail(signature)
    return copy


def _remove_keeping_tail(node: etree._Element) -> None:
    parent = node.getparent()
    assert parent is not None
    if node.tail:
        before = node.getprevious()
        if before is not None:
            before.tail = (before.tail or "") + node.tail
        else:
            parent.text = (parent.text or "") + node.tail
    parent.remove(node)


def _structure_problem(signature: etree._Element) -> str:
    references = signature.findall("ds:SignedInfo/ds:Reference", _NS)
    uris = [reference.get("URI") for reference in references]
    if uris != [""]:
        return (
            'the signature must cover the whole alert with one <Reference URI="">; it has '
            f"{len(uris)} reference(s) with URI {', '.join(repr(u) for u in uris) or 'none'}"
        )
    checked = etree.fromstring(etree.tostring(signature, with_tail=False), parser=hardened_parser())
    ident = checked.get("Id")
    if ident is not None and not _is_ncname(ident):
        del checked.attrib["Id"]  # NAADS writes Id="NAADS Signature"; it plays no part here
    for child in list(checked):
        if not isinstance(child.tag, str) or etree.QName(child).namespace != DSIG_NS:
            # NAADS adds <Object xmlns="">: outside SignedInfo, so it is never verified or used.
            checked.remove(child)
    with _SCHEMA_LOCK:
        try:
            XMLVerifier().validate_schema(checked)
        except etree.DocumentInvalid as exc:
            return f"the <Signature> does not follow the XML-DSig schema: {exc}"
    return ""


def _is_ncname(text: str) -> bool:
    try:
        etree.QName(text)
    except ValueError:
        return False
    return ":" not in text


def _embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for node in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
        try:
            certs.append(
                x509.load_der_x509_certificate(b64decode("".join((node.text or "").split())))
            )
        except (ValueError, binascii.Error):
            raise ValueError(
                "an <X509Certificate> in the signature is not a base64 DER certificate"
            ) from None
    return certs


def _configuration(at: datetime, allow_sha1: bool) -> SignatureConfiguration:
    def allowed(name: str) -> bool:
        return not name.startswith("HMAC") and (allow_sha1 or "SHA1" not in name)

    return SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset(m for m in SignatureMethod if allowed(m.name)),
        digest_algorithms=frozenset(d for d in DigestAlgorithm if allowed(d.name)),
        verification_time=at,
    )


def _check(
    document: etree._Element, cert: x509.Certificate, config: SignatureConfiguration, at: datetime
) -> str | None:
    """None when the signature verifies with ``cert``; otherwise why not, in plain words."""
    if at < cert.not_valid_before_utc:
        return (
            f"the signing certificate ({_subject(cert)}) is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if at > cert.not_valid_after_utc:
        return (
            f"the signing certificate ({_subject(cert)}) expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        _Verifier().verify(document, x509_cert=cert, expect_config=config, validate_schema=False)
    except Exception as exc:  # every signxml, lxml and cryptography failure becomes a reason
        return _failure(exc)
    return None


def _check_bare_key(document: etree._Element, config: SignatureConfiguration) -> _Outcome:
    """A signature that carries only its public key (KeyValue): integrity, no identity."""
    bare = replace(config, require_x509=False)
    try:
        result = _Verifier().verify(document, expect_config=bare, validate_schema=False)
    except Exception as exc:
        return _Outcome(False, _failure(exc))
    assert isinstance(result, VerifyResult)
    key = serialization.load_pem_public_key(result.signature_key)
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return _Outcome(True, key=der)


def _failure(exc: Exception) -> str:
    if isinstance(exc, InvalidDigest):
        return "the alert was changed after it was signed (the digest does not match)"
    if isinstance(exc, InvalidCertificate):
        return f"the signing certificate is not usable: {exc}"
    if isinstance(exc, InvalidSignature):
        return "the signature value does not match its key (wrong key, or SignedInfo was changed)"
    text = str(exc)
    if isinstance(exc, InvalidInput) and "forbidden by configuration" in text:
        return (
            f"{text.split(' forbidden')[0]} is not accepted (SHA-1 is broken); sign with "
            "RSA-SHA256 or ECDSA-SHA256 and a SHA-256 digest"
        )
    if isinstance(exc, InvalidInput):
        return f"the signature cannot be checked: {text}"
    return f"the signature cannot be checked: {type(exc).__name__}: {text}"


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _most_telling(failures: list[str]) -> str:
    """A mismatch with the wrong one of several keys says less than any other failure."""
    telling = [f for f in failures if not f.startswith("the signature value does not match")]
    return (telling or failures)[0]


def _is_trusted(outcome: _Outcome, trusted: Sequence[x509.Certificate], at: datetime) -> bool:
    """The signer is a trusted certificate (or has a trusted certificate's key), or its
    certificate chains to one through the signature's own intermediates, under the Web PKI
    rules for CAs."""
    if outcome.key and outcome.key in {_spki(cert) for cert in trusted}:
        return True
    if outcome.cert is None:
        return False
    builder = (
        PolicyBuilder()
        .store(Store(list(trusted)))
        .time(at)
        .extension_policies(
            ee_policy=ExtensionPolicy.permit_all(), ca_policy=ExtensionPolicy.webpki_defaults_ca()
        )
    )
    signer = fingerprint(outcome.cert)
    intermediates = [cert for cert in outcome.chain if fingerprint(cert) != signer]
    try:
        builder.build_client_verifier().verify(outcome.cert, intermediates)
    except (VerificationError, ValueError):
        return False
    return True
