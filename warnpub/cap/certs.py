"""PEM files named in configuration: trusted certificates and the centre's signing key.

Files are read on first use and again whenever they change on disk (size or modification
time), so replacing a certificate takes effect without a restart. A file that cannot be read
or holds no PEM of the expected kind raises :class:`CertificateFileError`, which names the file
and the configuration key.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class CertificateFileError(ValueError):
    """A configured PEM file is missing, unreadable or of the wrong kind."""


def file_stamp(path: str | Path, key: str) -> tuple[str, int, int]:
    """(path, modification time, size) of a configured file; changes when the file does."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise CertificateFileError(
            f"[cap] {key}: cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from None
    return str(path), stat.st_mtime_ns, stat.st_size


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateFileError(
            f"[cap] {key}: cannot read {path!r}: {exc.strerror or exc}"
        ) from None


@lru_cache(maxsize=64)
def _certificates(path: str, _mtime_ns: int, _size: int, key: str) -> tuple[x509.Certificate, ...]:
    data = _read(path, key)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CertificateFileError(
            f"[cap] {key}: {path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    return tuple(certs)


@lru_cache(maxsize=8)
def _private_key(path: str, _mtime_ns: int, _size: int) -> PrivateKeyTypes:
    data = _read(path, "signing_key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateFileError(
            f"[cap] signing_key: {path!r} is not an unencrypted PEM private key ({exc})"
        ) from None


def load_certificates(
    paths: Iterable[str | Path], key: str = "trusted_certs"
) -> list[x509.Certificate]:
    """Every certificate in the PEM files ``paths`` (a file may hold several), in order."""
    certs: list[x509.Certificate] = []
    for path in paths:
        certs.extend(_certificates(*file_stamp(path, key), key))
    return certs


def load_private_key(path: str | Path) -> PrivateKeyTypes:
    """The unencrypted PEM private key in ``path``."""
    return _private_key(*file_stamp(path, "signing_key"))


def fingerprint(cert: x509.Certificate) -> bytes:
    """The SHA-256 fingerprint of a certificate (its DER bytes)."""
    return cert.fingerprint(hashes.SHA256())
