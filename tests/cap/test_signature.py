"""Enveloped XML signatures on CAP: the two real signatures of Environment Canada's alert
(tests/data/cap/canada_signed.cap, from google/cap-library), documents signed here with
throwaway keys (trustme CAs), tampered copies, and the intake and `cap validate` views."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from tests.cap.shared_data import CHINESE_CAP, example
from warnpub.cap import cap12_schema, parse_cap_xml, validate_bytes
from warnpub.cap.certs import CertificateFileError, load_certificates
from warnpub.cap.elements import DSIG_NS
from warnpub.cap.signature import SignatureStatus, verify_cap_signature
from warnpub.cap.signing import CapSigner, signer_for
from warnpub.config import Settings, load_settings
from warnpub.intake.signatures import signature_problem
from warnpub.problems import Problem

CANADA_SENT = datetime(2013, 1, 24, 21, 26, tzinfo=UTC)  # the alert's <sent>
NAADS = "CN=dss1.pelmorex.com"
ENVIRONMENT_CANADA = "CN=meteo.gc.ca"


class Pki:
    """A throwaway CA and the centre's certificate it issued (RSA unless asked otherwise)."""

    def __init__(self, key_type: trustme.KeyType = trustme.KeyType.RSA, days: float = 30) -> None:
        self.ca = trustme.CA(key_type=key_type)
        self.leaf = self.ca.issue_cert(
            "warn.liyang.example.cn",
            common_name="warn.liyang.example.cn",
            not_after=datetime.now(UTC) + timedelta(days=days),
            key_type=key_type,
        )
        self.ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        self.cert = x509.load_pem_x509_certificate(self.leaf.cert_chain_pems[0].bytes())
        self.subject = self.cert.subject.rfc4514_string()
        assert self.subject.startswith("CN=warn.liyang.example.cn,")
        key = serialization.load_pem_private_key(self.leaf.private_key_pem.bytes(), None)
        self.signer = CapSigner(key, [self.cert])

    def sign(self, document: bytes = CHINESE_CAP.encode()) -> bytes:
        return self.signer.sign(document)

    def write(self, folder: Path) -> dict[str, str]:
        """PEM files for [cap]: the key, the certificate and the CA certificate."""
        paths = {
            "signing_key": folder / "centre.key",
            "signing_cert": folder / "centre.pem",
            "ca": folder / "ca.pem",
        }
        self.leaf.private_key_pem.write_to_path(str(paths["signing_key"]))
        self.leaf.cert_chain_pems[0].write_to_path(str(paths["signing_cert"]))
        self.ca.cert_pem.write_to_path(str(paths["ca"]))
        return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def embedded_certificate(document: bytes, index: int) -> x509.Certificate:
    root = etree.fromstring(document)
    text = root.findall(f".//{{{DSIG_NS}}}X509Certificate")[index].text or ""
    return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))


# -- the real Canadian signatures -----------------------------------------------------------


def test_both_real_canadian_signatures_verify_as_of_their_time() -> None:
    status = verify_cap_signature(example("canada_signed.cap"), at=CANADA_SENT, allow_sha1=True)
    assert status == SignatureStatus(
        present=True,
        valid=True,
        signer=status.signer,
        reason="no trusted certificates are configured, so the signer is not checked",
        trusted=False,
        count=2,
    )
    assert status.signer is not None and status.signer.startswith(NAADS)


def test_a_pinned_canadian_certificate_makes_the_signer_trusted() -> None:
    data = example("canada_signed.cap")
    environment_canada = embedded_certificate(data, 1)
    assert environment_canada.subject.rfc4514_string().startswith(ENVIRONMENT_CANADA)
    status = verify_cap_signature(data, [environment_canada], at=CANADA_SENT, allow_sha1=True)
    assert status.valid and status.trusted
    assert status.signer is not None and status.signer.startswith(ENVIRONMENT_CANADA)


def test_canadian_signatures_are_refused_today_expired_and_sha1() -> None:
    today = verify_cap_signature(example("canada_signed.cap"))
    assert today.present and not today.valid
    assert "signature 1 of 2 (Id 'NAADS Signature')" in today.reason
    assert "expired on 2018-05-30" in today.reason
    sha1 = verify_cap_signature(example("canada_signed.cap"), at=CANADA_SENT)
    assert not sha1.valid and "RSA_SHA1 is not accepted" in sha1.reason


def test_a_tampered_canadian_alert_is_detected() -> None:
    data = example("canada_signed.cap").replace(
        b"<headline>snowfall warning</headline>", b"<headline>all clear</headline>"
    )
    status = verify_cap_signature(data, at=CANADA_SENT, allow_sha1=True)
    assert status.present and not status.valid
    assert "changed after it was signed" in status.reason


def test_a_forged_second_signature_is_named() -> None:
    data = example("canada_signed.cap")
    root = etree.fromstring(data)
    value = root.findall(f"{{{DSIG_NS}}}Signature")[1].find(f"{{{DSIG_NS}}}SignatureValue")
    assert value is not None and value.text
    value.text = value.text.replace("q", "Q", 1)
    status = verify_cap_signature(etree.tostring(root), at=CANADA_SENT, allow_sha1=True)
    assert not status.valid
    assert status.reason.startswith("signature 2 of 2 (Id 'Environment Canada'): ")
    assert "does not match its key" in status.reason


def test_a_bare_key_signature_is_checked_for_integrity() -> None:
    status = verify_cap_signature(example("earthquake-iso8859-1.cap"), allow_sha1=True)
    assert status.valid and not status.trusted
    assert status.signer is not None and status.signer.startswith("a bare public key")


def test_a_placeholder_signature_does_not_verify() -> None:
    status = verify_cap_signature(example("google-PAAQ-4-mg5a94.xml"))
    assert status.present and not status.valid
    assert 'one <Reference URI="">' in status.reason


def test_an_unsigned_alert() -> None:
    status = verify_cap_signature(CHINESE_CAP.encode())
    assert not status.present and not status.valid and status.summary == "no signature"


# -- documents signed here ------------------------------------------------------------------


@pytest.mark.parametrize("key_type", [trustme.KeyType.RSA, trustme.KeyType.ECDSA])
def test_a_signed_document_is_schema_valid_and_verifies(key_type: trustme.KeyType) -> None:
    pki = Pki(key_type)
    signed = pki.sign()
    cap12_schema().assertValid(etree.fromstring(signed))
    alert = parse_cap_xml(signed)
    assert alert.has_signature and alert == parse_cap_xml(CHINESE_CAP.encode()).model_copy(
        update={"has_signature": True}
    )
    integrity = verify_cap_signature(signed)
    assert integrity.valid and not integrity.trusted and integrity.count == 1
    assert integrity.signer == pki.subject
    by_ca = verify_cap_signature(signed, [pki.ca_cert])
    assert by_ca.valid and by_ca.trusted and by_ca.reason == "signed by a trusted certificate"
    assert verify_cap_signature(signed, [pki.cert]).trusted  # pinned


def test_a_signer_no_trusted_certificate_vouches_for_is_refused(pki: Pki) -> None:
    stranger = Pki()
    status = verify_cap_signature(pki.sign(), [stranger.ca_cert])
    assert not status.valid and not status.trusted
    assert status.reason == f"signed by {pki.subject}, which no trusted certificate vouches for"


def test_a_tampered_document_is_refused(pki: Pki) -> None:
    signed = pki.sign()
    tampered = signed.replace("暴雨红色预警".encode(), "暴雨蓝色预警".encode(), 1)
    assert tampered != signed
    status = verify_cap_signature(tampered, [pki.ca_cert])
    assert not status.valid and "changed after it was signed" in status.reason


def test_a_signature_over_part_of_the_document_is_refused(pki: Pki) -> None:
    root = etree.fromstring(pki.sign())
    reference = root.find(f".//{{{DSIG_NS}}}Reference")
    assert reference is not None
    reference.set("URI", "#info")
    status = verify_cap_signature(etree.tostring(root), [pki.ca_cert])
    assert not status.valid and "with URI '#info'" in status.reason


def test_an_expired_certificate_is_refused(pki: Pki) -> None:
    later = datetime.now(UTC) + timedelta(days=31)
    status = verify_cap_signature(pki.sign(), [pki.ca_cert], at=later)
    assert not status.valid and f"({pki.subject}) expired on" in status.reason


def test_the_signer_refuses_a_key_that_is_not_the_certificates(pki: Pki) -> None:
    other = Pki()
    with pytest.raises(CertificateFileError, match="does not belong to signing_key"):
        CapSigner(other.signer.key, [pki.cert])


# -- configuration, intake and `cap validate` -----------------------------------------------


def settings_with(**cap: object) -> Settings:
    settings = load_settings(environ={})
    settings.cap = settings.cap.model_copy(update=cap)
    return settings


def test_intake_passes_unsigned_and_verified_messages(pki: Pki, tmp_path: Path) -> None:
    files = pki.write(tmp_path)
    assert signature_problem(CHINESE_CAP.encode(), settings_with()) is None
    assert signature_problem(pki.sign(), settings_with()) is None  # integrity only
    assert signature_problem(pki.sign(), settings_with(trusted_certs=[files["ca"]])) is None


def test_intake_refuses_a_signature_that_does_not_verify(pki: Pki, tmp_path: Path) -> None:
    tampered = pki.sign().replace("溧阳市".encode(), "常州市".encode(), 1)
    problem = signature_problem(tampered, settings_with())
    assert isinstance(problem, Problem)
    assert problem.status == 422 and problem.kind == "cap-signature"
    assert problem.errors[0].field == "alert/Signature"
    assert "changed after it was signed" in problem.errors[0].message

    folder = tmp_path / "stranger"
    folder.mkdir()
    stranger = Pki().write(folder)
    untrusted = signature_problem(pki.sign(), settings_with(trusted_certs=[stranger["ca"]]))
    assert untrusted is not None and "no trusted certificate vouches" in untrusted.errors[0].message


def test_trusted_certificate_files_are_read_and_bad_ones_named(tmp_path: Path, pki: Pki) -> None:
    files = pki.write(tmp_path)
    assert load_certificates([files["ca"], files["signing_cert"]]) == [pki.ca_cert, pki.cert]
    with pytest.raises(CertificateFileError, match=r"\[cap\] trusted_certs: cannot read"):
        load_certificates([str(tmp_path / "missing.pem")])
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(CertificateFileError, match="holds no PEM certificate"):
        load_certificates([str(tmp_path / "empty.pem")])


def test_signing_is_configured_as_a_pair(pki: Pki, tmp_path: Path) -> None:
    assert signer_for(settings_with()) is None
    files = pki.write(tmp_path)
    signer = signer_for(
        settings_with(signing_key=files["signing_key"], signing_cert=files["signing_cert"])
    )
    assert signer is not None and signer.subject == pki.subject
    with pytest.raises(Problem) as refused:
        load_settings(environ={"WARNPUB_CAP_SIGNING_KEY": files["signing_key"]})
    assert "signing_key and signing_cert together" in str(refused.value)


def test_cap_validate_reports_signature_status(pki: Pki) -> None:
    # Without trusted certificates given, the report is what it always was.
    assert validate_bytes(pki.sign()).summary.endswith(", signature present")
    assert validate_bytes(pki.sign()).signature is None
    trusted = validate_bytes(pki.sign(), trusted_certs=[pki.ca_cert])
    assert trusted.ok and trusted.signature is not None and trusted.signature.trusted
    assert trusted.summary == (
        f"valid CAP 1.2: Alert, 1 info block, signature verified, signed by trusted {pki.subject}"
    )
    checked = validate_bytes(pki.sign(), trusted_certs=[])
    assert checked.summary.endswith(
        "signature verified (integrity only: no trusted certificates are configured, so the "
        f"signer is not checked), signed by {pki.subject}"
    )
    canada = validate_bytes(example("canada_signed.cap"), trusted_certs=[])
    assert canada.ok  # the CAP is valid; its signatures are reported, not held against it
    assert ", 2 signatures NOT verified: signature 1 of 2" in canada.summary
    assert validate_bytes(CHINESE_CAP.encode(), trusted_certs=[]).summary.endswith("no signature")
