"""Who is calling: an agency (API key) or an operator (bearer token), from the Authorization header."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.auth.secrets import KEY_PREFIX, TOKEN_PREFIX, api_key_prefix, key_matches, sha256_hex
from warnpub.clock import utcnow
from warnpub.problems import forbidden, unauthorized
from warnpub.storage.tables import Agency, AgencyKey, Operator, OperatorToken


@dataclass(frozen=True, slots=True)
class Caller:
    agency: Agency | None = None
    operator: Operator | None = None

    @property
    def actor(self) -> str:
        if self.agency is not None:
            return f"agency:{self.agency.code}"
        assert self.operator is not None
        return f"operator:{self.operator.username}"

    @property
    def role(self) -> str:
        return self.operator.role if self.operator is not None else "agency"


def bearer(header: str | None) -> str:
    if not header:
        raise unauthorized("send 'Authorization: Bearer <API key or operator token>'")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized(
            "use the Bearer scheme: 'Authorization: Bearer <API key or operator token>'"
        )
    return value.strip()


async def identify(session: AsyncSession, authorization: str | None) -> Caller:
    """The caller named by the header, or a 401 saying what is wrong with the credential."""
    credential = bearer(authorization)
    if credential.startswith(KEY_PREFIX + "_"):
        return Caller(agency=await _agency_for_key(session, credential))
    if credential.startswith(TOKEN_PREFIX + "_"):
        return Caller(operator=await _operator_for_token(session, credential))
    raise unauthorized(
        "the credential is neither a warnpub API key (wpk_…) nor an operator token (wpt_…)"
    )


async def _agency_for_key(session: AsyncSession, key: str) -> Agency:
    prefix = api_key_prefix(key)
    row = None
    if prefix is not None:
        row = (
            await session.execute(
                select(AgencyKey, Agency)
                .join(Agency, Agency.id == AgencyKey.agency_id)
                .where(AgencyKey.prefix == prefix)
            )
        ).first()
    if row is None or not key_matches(key, row[0].key_hash):
        raise unauthorized("the API key is not valid")
    agency_key, agency = row
    if agency_key.revoked_at is not None:
        raise unauthorized("the API key was revoked; ask the release centre for a new one")
    if not agency.active:
        raise forbidden(f"agency {agency.code} is not active")
    return agency


async def _operator_for_token(session: AsyncSession, token: str) -> Operator:
    row = (
        await session.execute(
            select(OperatorToken, Operator)
            .join(Operator, Operator.id == OperatorToken.operator_id)
            .where(OperatorToken.token_hash == sha256_hex(token))
        )
    ).first()
    if row is None:
        raise unauthorized("the operator token is not valid")
    tok, op = row
    if tok.revoked_at is not None or tok.expires_at <= utcnow():
        raise unauthorized(
            "the operator token has expired; sign in again (POST /api/v1/auth/login)"
        )
    if not op.active:
        raise forbidden(f"operator {op.username} is disabled")
    return op


def require_operator(caller: Caller, *roles: str) -> Operator:
    """The operator behind ``caller``; 403 when it is an agency or lacks one of ``roles``."""
    if caller.operator is None:
        raise forbidden("only operators may do this; agencies submit and read their own warnings")
    if roles and caller.operator.role not in roles:
        raise forbidden(f"this needs the role {' or '.join(roles)}; you are {caller.operator.role}")
    return caller.operator
