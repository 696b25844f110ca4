"""HTTP entry points: partner webhook endpoints (operator), delivery state (operator).

Every route except `/healthz` needs the operator bearer token: webhook secrets and delivery state
are operator business, and the notification list names educators and (masked) addresses.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from iioe.runtime.http import ApiError, operator_auth
from iioe.runtime.settings import ServiceSettings
from iioe.subjects import INSTITUTION_CODE_RE
from services.notifications.domain import ALL_INSTITUTIONS, WEBHOOK_EVENT_TYPES, mask_email, normalise_event_type
from services.notifications.usecases import NotificationUseCases, RegisterWebhook
from services.notifications.webhooks import generate_secret

NotificationStatus = Literal["awaiting_contact", "pending", "sending", "sent", "failed", "expired"]
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
    recipient: str | None = Field(description="masked address, e.g. s***@must.edu.mn")
    language: str | None
    status: NotificationStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime


def _webhook(row: dict[str, object]) -> Webhook:
    return Webhook.model_validate({**row, "id": row["webhook_id"]})


def build_router(usecases: NotificationUseCases, settings: ServiceSettings) -> APIRouter:
    router = APIRouter(dependencies=[Depends(operator_auth(settings))])
    Limit = Annotated[int, Query(ge=1, le=1000)]

    @router.post("/v1/webhooks", status_code=201, response_model=CreatedWebhook)
    async def create_webhook(body: WebhookCreate) -> CreatedWebhook:
        """Register a partner endpoint; the returned secret is not shown again."""
        secret = generate_secret()
        row = await usecases.register_webhook(
            RegisterWebhook(f"wh_{secrets.token_hex(8)}", str(body.url), body.institution, body.event_types, secret)
        )
        return CreatedWebhook(**_webhook(row).model_dump(), secret=secret)

    @router.get("/v1/webhooks", response_model=list[Webhook])
    async def list_webhooks() -> list[Webhook]:
        return [_webhook(r) for r in await usecases.webhooks()]

    @router.delete("/v1/webhooks/{webhook_id}", status_code=204)
    async def delete_webhook(webhook_id: str) -> Response:
        """Stop sending to an endpoint; queued deliveries are cancelled, history is kept."""
        if not await usecases.delete_webhook(webhook_id):
            raise ApiError(404, "webhook_not_found", f"no webhook with id {webhook_id!r}")
        return Response(status_code=204)

    @router.get("/v1/webhooks/deliveries", response_model=list[Delivery])
    async def list_deliveries(
        status: DeliveryStatus | None = None,
        webhook_id: str | None = None,
        event_id: str | None = None,
        limit: Limit = 100,
    ) -> list[Delivery]:
        rows = await usecases.deliveries(status, webhook_id, event_id, limit)
        return [Delivery.model_validate({**r, "id": r["delivery_id"]}) for r in rows]

    @router.post("/v1/webhooks/deliveries/{delivery_id}/retry", status_code=202)
    async def retry_delivery(delivery_id: str) -> dict[str, str]:
        """Re-drive a dead delivery with a fresh retry budget (the IIOE_DLQ entry is only a record)."""
        if not await usecases.redrive_delivery(delivery_id):
            raise ApiError(404, "dead_delivery_not_found", f"no dead delivery with id {delivery_id!r}")
        return {"id": delivery_id, "status": "pending"}

    @router.get("/v1/notifications", response_model=list[Notification])
    async def list_notifications(
        educator_id: str | None = None, status: NotificationStatus | None = None, limit: Limit = 100
    ) -> list[Notification]:
        rows = await usecases.notifications(educator_id, status, limit)
        return [
            Notification.model_validate({**r, "id": r["notification_id"], "recipient": mask_email(r["recipient"])})
            for r in rows
        ]

    return router
