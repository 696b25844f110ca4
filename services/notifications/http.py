"""HTTP entry points: partner webhook endpoints and delivery state (operator scope `webhooks`), and the
notification list (personal data: any token; an institution's token sees only its own educators).

Every operator or institution action is written to the audit log (`iioe.runtime.auth.audit`).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from iioe.runtime.auth import audit, authenticated, check_institution_access, require_scope
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from iioe.subjects import INSTITUTION_CODE_RE
from services.notifications.domain import ALL_INSTITUTIONS, WEBHOOK_EVENT_TYPES, mask_email, normalise_event_type
from services.notifications.targets import TargetRefused
from services.notifications.usecases import NotificationUseCases, RegisterWebhook
from services.notifications.webhooks import generate_secret

NotificationStatus = Literal["held", "awaiting_contact", "pending", "sending", "sent", "failed", "expired"]
DeliveryStatus = Literal["pending", "sending", "delivered", "dead", "cancelled"]


class WebhookCreate(BaseModel):
    url: AnyHttpUrl = Field(examples=["https://lms.must.edu.mn/iioe/webhooks"])
    institution: str = Field(default=ALL_INSTITUTIONS, description="an institution code, or '*' for all")
    event_types: list[str] = Field(
        min_length=1, description=f"short names or CloudEvent types: {', '.join(WEBHOOK_EVENT_TYPES)}"
    )

    @field_validator("institution")
    @classmethod
    def _institution(cls, value: str) -> str:
        if value != ALL_INSTITUTIONS and not INSTITUTION_CODE_RE.fullmatch(value):
            raise ValueError("must be an institution code ([a-z0-9-]{2,32}) or '*'")
        return value

    @field_validator("event_types")
    @classmethod
    def _event_types(cls, values: list[str]) -> list[str]:
        types = []
        for value in values:
            normalised = normalise_event_type(value)
            if normalised is None:
                raise ValueError(f"{value!r} is not one of {', '.join(WEBHOOK_EVENT_TYPES)}")
            if normalised not in types:
                types.append(normalised)
        return types


class Webhook(BaseModel):
    id: str
    url: str
    institution: str
    event_types: list[str]
    created_at: datetime


class CreatedWebhook(Webhook):
    secret: str = Field(description="Standard Webhooks secret (`whsec_…`); shown only in this response")


class Delivery(BaseModel):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


class Notification(BaseModel):
    id: str
    event_id: str
    event_type: str
    kind: str
    channel: str
    educator_id: str
    institution: str | None
    recipient: str | None = Field(description="masked address, e.g. s***@must.edu.mn; null once erased")
    language: str | None
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime


Limit = Annotated[int, Query(ge=1, le=1000)]
"""How many rows a list returns (module level: with postponed annotations FastAPI resolves names here)."""
Operator = Annotated[TokenGrant, Depends(require_scope("webhooks"))]
"""An operator token with the `webhooks` scope (or `admin`)."""
Caller = Annotated[TokenGrant, Depends(authenticated)]
"""Any valid token: an operator's, or an institution's (then limited to that institution)."""


def _webhook(row: dict[str, object]) -> Webhook:
    return Webhook.model_validate({**row, "id": row["webhook_id"]})


def build_router(usecases: NotificationUseCases) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/webhooks", status_code=201, response_model=CreatedWebhook)
    async def create_webhook(body: WebhookCreate, grant: Operator) -> CreatedWebhook:
        """Register a partner endpoint; the returned secret is not shown again.

        422 `webhook_target_forbidden` for private, loopback, link-local, multicast or platform
        addresses (unless allow-listed), 422 `webhook_target_unresolvable` when the host does not resolve."""
        secret = generate_secret()
        webhook_id = f"wh_{secrets.token_hex(8)}"
        try:
            row = await usecases.register_webhook(
                RegisterWebhook(webhook_id, str(body.url), body.institution, body.event_types, secret)
            )
        except TargetRefused as exc:
            audit(grant, "webhook.refused", institution=body.institution, code=exc.code)
            raise ApiError(422, exc.code, exc.message) from exc
        audit(grant, "webhook.create", webhook_id=webhook_id, institution=body.institution)
        return CreatedWebhook(**_webhook(row).model_dump(), secret=secret)

    @router.get("/v1/webhooks", response_model=list[Webhook])
    async def list_webhooks(grant: Operator) -> list[Webhook]:
        audit(grant, "webhook.list")
        return [_webhook(r) for r in await usecases.webhooks()]

    @router.delete("/v1/webhooks/{webhook_id}", status_code=204)
    async def delete_webhook(webhook_id: str, grant: Operator) -> Response:
        """Stop sending to an endpoint; queued deliveries are cancelled, history is kept."""
        audit(grant, "webhook.delete", webhook_id=webhook_id)
        if not await usecases.delete_webhook(webhook_id):
            raise ApiError(404, "webhook_not_found", f"no webhook with id {webhook_id!r}")
        return Response(status_code=204)

    @router.get("/v1/webhooks/deliveries", response_model=list[Delivery])
    async def list_deliveries(
        grant: Operator,
        status: DeliveryStatus | None = None,
        webhook_id: str | None = None,
        event_id: str | None = None,
        limit: Limit = 100,
    ) -> list[Delivery]:
        audit(grant, "webhook.deliveries", webhook_id=webhook_id, event_id=event_id)
        rows = await usecases.deliveries(status, webhook_id, event_id, limit)
        return [Delivery.model_validate({**r, "id": r["delivery_id"]}) for r in rows]

    @router.post("/v1/webhooks/deliveries/{delivery_id}/retry", status_code=202)
    async def retry_delivery(delivery_id: str, grant: Operator) -> dict[str, str]:
        """Re-drive a dead delivery with a fresh retry budget (the IIOE_DLQ entry is only a record)."""
        audit(grant, "webhook.redrive", delivery_id=delivery_id)
        if not await usecases.redrive_delivery(delivery_id):
            raise ApiError(404, "dead_delivery_not_found", f"no dead delivery with id {delivery_id!r}")
        return {"id": delivery_id, "status": "pending"}

    @router.get("/v1/notifications", response_model=list[Notification])
    async def list_notifications(
        grant: Caller,
        educator_id: str | None = None,
        status: NotificationStatus | None = None,
        institution: str | None = None,
        limit: Limit = 100,
    ) -> list[Notification]:
        """Notifications with masked addresses: an operator sees all (or one `institution`), an
        institution's token only its own institution's educators."""
        if grant.kind != "operator":
            if grant.institution is None:
                raise ApiError(403, "forbidden", "this token acts for no institution")
            check_institution_access(grant, institution or grant.institution)
            institution = grant.institution
        audit(grant, "notifications.list", institution=institution, educator_id=educator_id)
        rows = await usecases.notifications(educator_id, status, limit, institution=institution)
        return [
            Notification.model_validate({**r, "id": r["notification_id"], "recipient": mask_email(r["recipient"])})
            for r in rows
        ]

    return router
