"""The access lifecycle over the API (admin role, ``admin_users``): operators and API tokens.

The same core as ``fieldid user`` and ``fieldid token`` (:class:`fieldid.access.accounts.Accounts`),
which audits every change: ``user_add``, ``user_disable`` (its sessions ended and tokens revoked
at once), ``user_enable``, ``user_password_reset``, ``token_issue``, ``token_revoke``; listing is
audited too (``account_list``, ``token_list``).
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from fieldid.access.accounts import OperatorInfo
from fieldid.service import schemas
from fieldid.service.api import ERRORS, PROBLEM
from fieldid.service.auth import Need, Principal, app_state

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _user(u: OperatorInfo) -> dict[str, Any]:
    return {
        "name": u.name,
        "role": u.role.value,
        "disabled": u.disabled,
        "created_at": u.created_at.isoformat(),
        "created_by": u.created_by,
        "last_login_at": None if u.last_login_at is None else u.last_login_at.isoformat(),
    }


class UserIn(BaseModel):
    name: str = Field(max_length=100)
    role: str = Field(max_length=20, description="officer | supervisor | auditor | admin")
    password: str = Field(max_length=1000, description="At least 10 characters.")


class PasswordIn(BaseModel):
    password: str = Field(max_length=1000, description="At least 10 characters.")


class TokenIn(BaseModel):
    operator: str = Field(max_length=100)
    scopes: list[str] | None = Field(
        None, description="Actions it may do; default: all the operator's role permits."
    )
    days: int = Field(90, ge=1, le=365)
    label: str = Field("", max_length=200)


@router.get("/users", response_model=schemas.OperatorList, responses=ERRORS)
def list_users(
    request: Request, principal: Annotated[Principal, Depends(Need("admin_users"))]
) -> dict[str, Any]:
    """Every operator: role, state, when made and by whom, last login."""
    state = app_state(request)
    users = state.accounts.list_users()
    state.workspace.store.append_audit(
        "account_list",
        operator=principal.actor.name,
        payload={"role": principal.actor.role.value, "via": principal.via},
    )
    return {"users": [_user(u) for u in users]}


@router.post(
    "/users",
    status_code=201,
    response_model=schemas.OperatorAccount,
    responses={**ERRORS, 409: PROBLEM},
)
def add_user(
    body: UserIn, request: Request, principal: Annotated[Principal, Depends(Need("admin_users"))]
) -> JSONResponse:
    """Add an operator (audited ``user_add``)."""
    state = app_state(request)
    info = state.accounts.add_user(body.name, body.role, body.password, by=principal.actor.name)
    return JSONResponse(_user(info), status_code=201)


@router.post(
    "/users/{name}/disable",
    response_model=schemas.OperatorAccount,
    responses={**ERRORS, 404: PROBLEM},
)
def disable_user(
    name: str, request: Request, principal: Annotated[Principal, Depends(Need("admin_users"))]
) -> dict[str, Any]:
    """Disable an operator: their sessions end and their tokens are revoked at once (audited
    ``user_disable``). The last active admin cannot be disabled (``account.last_admin``)."""
    state = app_state(request)
    revoked = state.accounts.set_disabled(name, True, by=principal.actor.name)
    info = state.accounts.get_user(name)
    assert info is not None
    return {**_user(info), "tokens_revoked": revoked}


@router.post(
    "/users/{name}/enable",
    response_model=schemas.OperatorAccount,
    responses={**ERRORS, 404: PROBLEM},
)
def enable_user(
    name: str, request: Request, principal: Annotated[Principal, Depends(Need("admin_users"))]
) -> dict[str, Any]:
    """Enable a disabled operator (audited ``user_enable``); revoked tokens stay revoked."""
    state = app_state(request)
    state.accounts.set_disabled(name, False, by=principal.actor.name)
    info = state.accounts.get_user(name)
    assert info is not None
    return _user(info)


@router.post(
    "/users/{name}/password",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 404: PROBLEM},
)
def reset_password(
    name: str,
    body: PasswordIn,
    request: Request,
    principal: Annotated[Principal, Depends(Need("admin_users"))],
) -> Response:
    """Give an operator a new password; their sessions end (audited ``user_password_reset``)."""
    app_state(request).accounts.reset_password(name, body.password, by=principal.actor.name)
    return Response(status_code=204)


@router.get("/tokens", response_model=schemas.TokenList, responses=ERRORS)
def list_tokens(
    request: Request,
    principal: Annotated[Principal, Depends(Need("admin_users"))],
    operator: str | None = None,
) -> dict[str, Any]:
    """API tokens (all, or ``?operator=``'s): whose, scopes, expiry, last use, state; never a
    secret."""
    state = app_state(request)
    tokens = state.accounts.list_tokens(operator)
    now = state.workspace.clock.now()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    state.workspace.store.append_audit(
        "token_list",
        operator=principal.actor.name,
        payload={"role": principal.actor.role.value, "via": principal.via, "of": operator},
    )
    return {"tokens": [t.to_dict(now) for t in tokens]}


@router.post(
    "/tokens",
    status_code=201,
    response_model=schemas.IssuedToken,
    responses={**ERRORS, 404: PROBLEM},
)
def issue_token(
    body: TokenIn, request: Request, principal: Annotated[Principal, Depends(Need("admin_users"))]
) -> JSONResponse:
    """Issue an API token; its ``secret`` is in this answer only (audited ``token_issue``)."""
    tok = app_state(request).accounts.issue_token(
        body.operator,
        scopes=body.scopes,
        lifetime=timedelta(days=body.days),
        label=body.label,
        by=principal.actor.name,
    )
    return JSONResponse(
        {
            "id": tok.id,
            "operator": tok.operator,
            "scopes": list(tok.scopes),
            "expires_at": tok.expires_at.isoformat(),
            "secret": tok.secret,
        },
        status_code=201,
    )


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses={**ERRORS, 404: PROBLEM},
)
def revoke_token(
    token_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(Need("admin_users"))],
) -> Response:
    """Revoke a token: it stops working at once (audited ``token_revoke``)."""
    app_state(request).accounts.revoke_token(token_id, by=principal.actor.name)
    return Response(status_code=204)
