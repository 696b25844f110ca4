"""Credit transfer use cases: request, decide, list — over the unit of work, rules in `transfers.py`.

Every decision runs under the certificate's row lock (the same lock recognitions and revocations take), so
two receiving institutions accepting at the same moment can never together exceed the certificate's credits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

from iioe.events import (
    CREDIT_TRANSFER_DECIDED,
    CREDIT_TRANSFER_REQUESTED,
    CreditTransferDecided,
    CreditTransferRequested,
)
from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.logging import get_logger
from services.certification.domain import Certificate, CertificationError, Recognition, recognition_id_for
from services.certification.ports import Repositories
from services.certification.transfers import CreditTransfer, Decision, check_actor, decide, request, transfer_id_for
from services.certification.usecases_base import load_certificate, record_recognition, utc_now

log = get_logger(__name__)


class TransferRepository(Protocol):
    async def get(self, request_id: str, *, for_update: bool = False) -> CreditTransfer | None: ...

    async def add(self, transfer: CreditTransfer) -> bool:
        """False when the request id is already stored."""
        ...

    async def record_decision(self, transfer: CreditTransfer) -> None:
        """Store the decision of a stored, undecided request."""

    async def of_institution(self, institution: str) -> list[CreditTransfer]:
        """Requests where `institution` is the educator's or the receiving one, oldest first."""
        ...


class TransferRepositories(Repositories, Protocol):
    @property
    def transfers(self) -> TransferRepository: ...


class TransferUnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[TransferRepositories]: ...


@dataclass(frozen=True)
class RequestTransfer:
    educator_id: str
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    acting_institution: str | None = None
    """The token's institution; None for an operator."""
    actor: str | None = None


@dataclass(frozen=True)
class DecideTransfer:
    request_id: str
    decision: Decision
    credits: float | None = None
    reason: str | None = None
    acting_institution: str | None = None
    actor: str | None = None


class CreditTransfers:
    def __init__(
        self,
        uow: TransferUnitOfWork,
        institutions: Mapping[str, Any],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._institutions = institutions
        self._clock = clock

    async def request(self, command: RequestTransfer) -> tuple[CreditTransfer, bool]:
        """Emit CreditTransferRequested once; a repeated request returns the first one."""
        if command.receiving_institution not in self._institutions:
            raise CertificationError(
                "unknown_institution", f"institution {command.receiving_institution!r} is not in the catalogue"
            )
        async with self._uow.transaction() as tx:
            certificate = await load_certificate(tx, command.certificate_id)
            check_actor(command.acting_institution, certificate.institution, "request a transfer of its certificates")
            request_id = transfer_id_for(
                certificate.certificate_id, command.receiving_institution, command.receiving_programme
            )
            transfer, new = request(
                certificate,
                command.educator_id,
                command.receiving_institution,
                command.receiving_programme,
                existing=await tx.transfers.get(request_id, for_update=True),
                at=self._clock(),
            )
            if not new:
                return transfer, False
            await tx.transfers.add(transfer)
            await tx.outbox.add_event(
                CreditTransferRequested(
                    request_id=transfer.request_id,
                    educator_id=transfer.educator_id,
                    institution=transfer.institution,
                    certificate_id=transfer.certificate_id,
                    receiving_institution=transfer.receiving_institution,
                    receiving_programme=transfer.receiving_programme,
                    requested_at=transfer.requested_at,
                ),
                subject=transfer.educator_id,
                event_id=f"credit-transfer-requested:{transfer.request_id}",
                time=transfer.requested_at,
                actor=command.actor,
            )
        log.info("credit transfer requested", request_id=transfer.request_id, certificate_id=transfer.certificate_id)
        return transfer, True

    async def decide(self, command: DecideTransfer) -> tuple[CreditTransfer, bool]:
        """Emit CreditTransferDecided once (and CreditRecognized on acceptance); a repeat returns the first."""
        async with self._uow.transaction() as tx:
            transfer = await tx.transfers.get(command.request_id)
            if transfer is None:
                raise CertificationError("transfer_not_found", f"no credit transfer request {command.request_id!r}")
            check_actor(command.acting_institution, transfer.receiving_institution, "decide on this request")
            certificate = await load_certificate(tx, transfer.certificate_id, for_update=True)  # serializes decisions
            transfer = await tx.transfers.get(command.request_id, for_update=True) or transfer
            recognitions = await tx.certificates.recognitions_of(certificate.certificate_id)
            recognition_id = recognition_id_for(
                certificate.certificate_id, transfer.receiving_institution, transfer.receiving_programme
            )
            if transfer.decision is None and any(r.recognition_id == recognition_id for r in recognitions):
                raise CertificationError(
                    "recognition_conflict", "these credits are already recognised in that programme (directly)"
                )
            decided, new = decide(
                transfer,
                certificate,
                command.decision,
                credits=command.credits,
                reason=command.reason,
                recognitions=recognitions,
                at=self._clock(),
            )
            if not new:
                return decided, False
            await tx.transfers.record_decision(decided)
            await self._emit_decision(tx, decided, certificate, recognition_id, command.actor)
        log.info("credit transfer decided", request_id=decided.request_id, decision=decided.decision)
        return decided, True

    async def _emit_decision(
        self,
        tx: TransferRepositories,
        decided: CreditTransfer,
        certificate: Certificate,
        recognition_id: str,
        actor: str | None,
    ) -> None:
        assert decided.decided_at is not None and decided.decision is not None
        await tx.outbox.add_event(
            CreditTransferDecided(
                request_id=decided.request_id,
                educator_id=decided.educator_id,
                institution=decided.institution,
                receiving_institution=decided.receiving_institution,
                decision=decided.decision,
                credits=decided.credits,
                reason=decided.reason,
                decided_at=decided.decided_at,
            ),
            subject=decided.educator_id,
            event_id=f"credit-transfer-decided:{decided.request_id}",
            time=decided.decided_at,
            actor=actor,
        )
        if decided.decision != "accepted" or decided.credits is None:
            return
        recognition = Recognition(
            recognition_id,
            certificate.certificate_id,
            decided.receiving_institution,
            decided.receiving_programme,
            decided.credits,
            decided.decided_at,
        )
        await record_recognition(tx, certificate, recognition, actor=actor)

    async def get(self, request_id: str, *, acting_institution: str | None = None) -> CreditTransfer:
        async with self._uow.transaction() as tx:
            transfer = await tx.transfers.get(request_id)
        if transfer is None or (
            acting_institution is not None
            and acting_institution not in (transfer.institution, transfer.receiving_institution)
        ):
            raise CertificationError("transfer_not_found", f"no credit transfer request {request_id!r}")
        return transfer

    async def of_institution(self, institution: str) -> list[CreditTransfer]:
        async with self._uow.transaction() as tx:
            return await tx.transfers.of_institution(institution)


# --- rebuilding from the log (restore.py) ---------------------------------------------------------------------


async def _restore_requested(tx: Repositories, received: ReceivedEvent) -> None:
    data = cast(CreditTransferRequested, received.event.data)
    if await tx.certificates.get(data.certificate_id) is None:
        return
    await cast(TransferRepositories, tx).transfers.add(
        CreditTransfer(
            request_id=data.request_id,
            educator_id=data.educator_id,
            institution=data.institution,
            certificate_id=data.certificate_id,
            receiving_institution=data.receiving_institution,
            receiving_programme=data.receiving_programme,
            requested_at=data.requested_at,
        )
    )


async def _restore_decided(tx: Repositories, received: ReceivedEvent) -> None:
    data = cast(CreditTransferDecided, received.event.data)
    transfers = cast(TransferRepositories, tx).transfers
    transfer = await transfers.get(data.request_id)
    if transfer is not None:
        decided = replace(transfer, decision=data.decision, credits=data.credits, reason=data.reason)
        await transfers.record_decision(replace(decided, decided_at=data.decided_at))


def restore_appliers() -> dict[str, Callable[[Repositories, ReceivedEvent], Awaitable[None]]]:
    """How `LogRestore` brings back transfer requests and decisions from this service's own events (the
    recognitions of accepted ones come back from their CreditRecognized events)."""
    return {CREDIT_TRANSFER_REQUESTED.type: _restore_requested, CREDIT_TRANSFER_DECIDED.type: _restore_decided}
