"""The AsyncAPI document of contract v1, generated with FastStream from the same pydantic models.

Every event subject is declared as a FastStream publisher with its CloudEvent schema, and the
register command as a subscriber, so the document can never drift from the code.
"""

from __future__ import annotations

from typing import Any

import yaml
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from iioe import __version__
from iioe.commands import (
    CHANGE_ROLE,
    ChangeRoleReply,
    ChangeRoleRequest,
    RegisterEducatorReply,
    RegisterEducatorRequest,
)
from iioe.envelope import CloudEvent
from iioe.events import ALL_EVENTS
from iioe.subjects import REGISTER_EDUCATOR, command_address, contact_address, event_address

DESCRIPTION = (
    "IIOE micro-certification platform, partner contract v1. Events are CloudEvents 1.0 in structured "
    "JSON mode (Content-Type application/cloudevents+json) with header Nats-Msg-Id = CloudEvent id, in "
    "JetStream stream IIOE_EVENTS (contacts: IIOE_CONTACTS; dead letters: IIOE_DLQ)."
)


def build_document_broker() -> NatsBroker:
    broker = NatsBroker("nats://127.0.0.1:4222")
    for spec in ALL_EVENTS:
        pattern = contact_address(spec.major) if spec.contact else event_address(spec.name, spec.major)
        model: Any = CloudEvent[spec.model]  # type: ignore[name-defined]
        broker.publisher(pattern, title=spec.type, description=(spec.model.__doc__ or "").strip(), schema=model)

    @broker.subscriber(
        command_address(REGISTER_EDUCATOR),
        title=REGISTER_EDUCATOR,
        description="Request–reply: register an educator. Reply {educator_id, status} or {error: {code, message}}.",
    )
    async def register_educator(body: RegisterEducatorRequest) -> RegisterEducatorReply:  # pragma: no cover
        raise NotImplementedError

    @broker.subscriber(
        command_address(CHANGE_ROLE),
        title="change_role",
        description=(
            "Request–reply: change the role of an educator of the institution. Reply {educator_id, role, status:"
            " changed|unchanged} or {error: {code, message}}; EducatorRoleChanged is emitted only when changed."
        ),
    )
    async def change_role(body: ChangeRoleRequest) -> ChangeRoleReply:  # pragma: no cover
        raise NotImplementedError

    return broker


def asyncapi_yaml() -> str:
    spec = AsyncAPI(build_document_broker(), title="IIOE platform events", version=__version__, description=DESCRIPTION)
    # sorted, so the committed document does not change with hash seeds
    return yaml.safe_dump(spec.to_specification().to_jsonable(), sort_keys=True, allow_unicode=True, width=100)
