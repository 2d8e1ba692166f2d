"""Bearer-token authentication.

Every call but ``GET /health``, ``GET /cds-services`` (discovery) and the
OpenAPI document needs ``Authorization: Bearer <token>``. A token is compared
with every configured token in constant time (``hmac.compare_digest``), so
neither the answer's timing nor its text tells a caller how close a guess
was. Tokens are never logged or echoed; the logs and the audit log name the
token's *name*.

A CDS Hooks JWT (signed by the EHR; see jwt_auth) is accepted as the bearer
token too when ``[jwt]`` configures its issuer; the name is the issuer's.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from .jwt_auth import JwtRejected, looks_like_jwt

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pathways"'}


class Tokens:
    """The configured tokens, as bytes, for constant-time comparison."""

    def __init__(self, tokens: dict[str, str]):
        self._items = [(name, token.encode()) for name, token in sorted(tokens.items())]

    def who(self, presented: str) -> str | None:
        """The name of the token presented, or None. Compares against every token, always."""
        given = presented.encode("utf-8", "replace")
        found = None
        for name, token in self._items:
            if hmac.compare_digest(given, token) and found is None:
                found = name
        return found


async def authenticate(request: Request) -> str:
    """A FastAPI dependency: the caller's token name, or 401.

    ``async`` because it is cheap: FastAPI runs a plain ``def`` dependency in the
    thread pool, and that hop cost more than the check itself."""
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(401, "this service needs a bearer token: send the header "
                                 "`Authorization: Bearer <token>`", headers=CHALLENGE)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "the Authorization header must be `Bearer <token>`", headers=CHALLENGE)
    token = token.strip()
    who = request.app.state.tokens.who(token)
    verifier = request.app.state.jwt
    if who is None and verifier is not None and looks_like_jwt(token):
        try:
            who = verifier.who(token)
        except JwtRejected as exc:
            raise HTTPException(401, str(exc), headers={
                "WWW-Authenticate": 'Bearer realm="pathways", error="invalid_token"'}) from None
    if who is None:
        raise HTTPException(401, "the bearer token was not recognised", headers=CHALLENGE)
    request.state.who = who
    request.app.state.library.follow(_followed)
    return who


def _followed(ok: bool, snapshot, problems: list[str]) -> None:
    from .rest import report_reload
    report_reload(ok, snapshot, problems, "another worker")


def authorise_admin(request: Request, who: str) -> None:
    """403 unless ``who`` may administer the service (``[service] admins``; empty: every token)."""
    admins = request.app.state.config.admins
    if admins and who not in admins:
        raise HTTPException(403, f"the token {who!r} may not reload the library; "
                                 "ask for a token named in [service] admins")
