"""The in-memory credit-transfer repository of `FakeUnitOfWork` (its state lives in `FakeState.transfers`)."""

from __future__ import annotations

from dataclasses import replace

from services.certification.transfers import CreditTransfer


class FakeTransfers:
    def __init__(self, transfers: dict[str, CreditTransfer]) -> None:
        self._t = transfers

    async def get(self, request_id: str, *, for_update: bool = False) -> CreditTransfer | None:
        return self._t.get(request_id)

    async def add(self, transfer: CreditTransfer) -> bool:
        clash = any(
            (t.certificate_id, t.receiving_institution, t.receiving_programme)
            == (transfer.certificate_id, transfer.receiving_institution, transfer.receiving_programme)
            for t in self._t.values()
        )
        if transfer.request_id in self._t or clash:
            return False
        self._t[transfer.request_id] = transfer
        return True

    async def record_decision(self, transfer: CreditTransfer) -> None:
        stored = self._t[transfer.request_id]
        if stored.decision is None:
            self._t[transfer.request_id] = replace(
                stored,
                decision=transfer.decision,
                credits=transfer.credits,
                reason=transfer.reason,
                decided_at=transfer.decided_at,
            )

    async def of_institution(self, institution: str) -> list[CreditTransfer]:
        mine = [t for t in self._t.values() if institution in (t.institution, t.receiving_institution)]
        return sorted(mine, key=lambda t: (t.requested_at, t.request_id))
