"""Credit transfer rules (#12 item 3) on the in-memory unit of work: one test per rule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from iioe.events import CreditRecognized, CreditTransferDecided, CreditTransferRequested
from services.certification.domain import CertificationError
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.tests.test_usecases import World
from services.certification.transfer_service import CreditTransfers, DecideTransfer, RequestTransfer
from services.certification.transfers import CreditTransfer, Decision, transfer_id_for
from services.certification.usecases import RecognizeCredits, RevokeCertificate

AI = "ai-in-higher-education"  # 3 credits
INSTITUTIONS: dict[str, Any] = {"must": {}, "num": {}, "hsum": {}}


class Transfers:
    def __init__(self) -> None:
        self.world = World()
        self.world.service.institutions = INSTITUTIONS
        self.uow: FakeUnitOfWork = self.world.uow
        self.service = CreditTransfers(self.uow, INSTITUTIONS, clock=lambda: datetime(2026, 1, 5, tzinfo=UTC))

    async def certificate(self, educator: str = "edu-1") -> str:
        await self.world.register(educator)
        await self.world.pass_all(educator, AI)
        return self.world.issued(educator)[0].certificate_id

    async def request(
        self,
        certificate_id: str,
        to: str = "num",
        programme: str = "msc-ed",
        *,
        educator: str = "edu-1",
        acting_institution: str | None = None,
        actor: str | None = None,
    ) -> tuple[CreditTransfer, bool]:
        command = RequestTransfer(educator, certificate_id, to, programme, acting_institution, actor)
        return await self.service.request(command)

    async def decide(
        self,
        request_id: str,
        decision: Decision = "accepted",
        *,
        credits: float | None = None,
        reason: str | None = None,
        acting_institution: str | None = None,
        actor: str | None = None,
    ) -> tuple[CreditTransfer, bool]:
        return await self.service.decide(
            DecideTransfer(request_id, decision, credits, reason, acting_institution, actor)
        )

    def events(self, model: type[BaseModel]) -> list[Any]:
        return self.uow.events_of(model)


@pytest.fixture
def t() -> Transfers:
    return Transfers()


async def test_a_request_emits_credit_transfer_requested_once(t: Transfers) -> None:
    cert = await t.certificate()
    first, new = await t.request(cert, acting_institution="must", actor="partner-must")
    again, new_again = await t.request(cert, acting_institution="must")
    assert new and not new_again and again == first and first.status == "requested"
    assert first.request_id == transfer_id_for(cert, "num", "msc-ed")
    [event] = t.events(CreditTransferRequested)
    assert (event.institution, event.receiving_institution, event.certificate_id) == ("must", "num", cert)
    assert [e.actor for e in t.uow.state.events if isinstance(e.data, CreditTransferRequested)] == ["partner-must"]


async def test_only_the_educators_institution_or_an_operator_may_request(t: Transfers) -> None:
    cert = await t.certificate()
    with pytest.raises(CertificationError) as caught:
        await t.request(cert, acting_institution="num")
    assert caught.value.code == "forbidden" and t.events(CreditTransferRequested) == []
    _, new = await t.request(cert, acting_institution=None)  # operator
    assert new


async def test_a_request_names_the_certificates_own_educator_and_a_known_institution(t: Transfers) -> None:
    cert = await t.certificate()
    with pytest.raises(CertificationError, match="holds no certificate"):
        await t.request(cert, educator="edu-2")
    with pytest.raises(CertificationError) as caught:
        await t.request(cert, to="nowhere")
    assert caught.value.code == "unknown_institution"
    with pytest.raises(CertificationError) as caught:
        await t.request("cert-missing")
    assert caught.value.code == "certificate_not_found"


async def test_a_revoked_certificate_cannot_be_transferred_nor_accepted(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    await t.world.service.revoke(RevokeCertificate(cert, "fraud"))
    with pytest.raises(CertificationError) as caught:
        await t.request(cert, to="hsum")
    assert caught.value.code == "certificate_revoked"
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, credits=3)
    assert caught.value.code == "certificate_revoked"
    rejected, _ = await t.decide(pending.request_id, "rejected", reason="revoked meanwhile")
    assert rejected.status == "rejected"  # a rejection is still possible


async def test_a_suspended_certificate_cannot_be_transferred_nor_accepted(t: Transfers) -> None:
    """A certificate whose status is not `active` (suspension, added by the status work) is refused alike."""
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    stored = t.uow.state.certificates[cert]

    class Suspended(type(stored)):  # type: ignore[misc]
        @property
        def status(self) -> str:
            return "suspended"

    t.uow.state.certificates[cert] = Suspended(**vars(stored))
    with pytest.raises(CertificationError) as caught:
        await t.request(cert, to="hsum")
    assert caught.value.code == "certificate_suspended"
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, credits=1)
    assert caught.value.code == "certificate_suspended"
    t.uow.state.certificates[cert] = stored


async def test_acceptance_emits_the_decision_and_a_credit_recognition(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    decided, new = await t.decide(pending.request_id, credits=2, acting_institution="num", actor="partner-num")
    assert new and decided.status == "accepted" and decided.credits == 2
    [decision] = t.events(CreditTransferDecided)
    [recognized] = t.events(CreditRecognized)
    assert (decision.decision, decision.credits, decision.receiving_institution) == ("accepted", 2, "num")
    assert (recognized.certificate_id, recognized.receiving_programme, recognized.credits) == (cert, "msc-ed", 2)
    _, recognitions = await t.world.service.certificate(cert)
    assert [r.credits for r in recognitions] == [2]


async def test_only_the_receiving_institution_or_an_operator_may_decide(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    for institution in ("must", "hsum"):  # the educator's own institution cannot accept for the receiver
        with pytest.raises(CertificationError) as caught:
            await t.decide(pending.request_id, credits=3, acting_institution=institution)
        assert caught.value.code == "forbidden"
    assert t.events(CreditTransferDecided) == []
    _, new = await t.decide(pending.request_id, credits=3, acting_institution=None)
    assert new


async def test_credits_accepted_never_exceed_the_certificate_across_all_programmes(t: Transfers) -> None:
    cert = await t.certificate()  # 3 credits
    a, _ = await t.request(cert, to="num", programme="msc-ed")
    b, _ = await t.request(cert, to="hsum", programme="msc-ai")
    c, _ = await t.request(cert, to="num", programme="phd")
    await t.decide(a.request_id, credits=2)
    with pytest.raises(CertificationError) as caught:
        await t.decide(b.request_id, credits=1.5)
    assert caught.value.code == "credits_exceed_certificate"
    await t.decide(b.request_id, credits=1)
    with pytest.raises(CertificationError, match="carries"):
        await t.decide(c.request_id, credits=0.5)
    assert [e.credits for e in t.events(CreditRecognized)] == [2, 1]


async def test_credits_recognised_directly_count_toward_the_limit(t: Transfers) -> None:
    cert = await t.certificate()
    await t.world.service.recognize(RecognizeCredits(cert, "hsum", "msc-x", 2.5))
    pending, _ = await t.request(cert)
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, credits=1)
    assert caught.value.code == "credits_exceed_certificate"
    accepted, _ = await t.decide(pending.request_id, credits=0.5)
    assert accepted.credits == 0.5


async def test_concurrent_acceptances_cannot_together_exceed_the_certificate(t: Transfers) -> None:
    cert = await t.certificate()
    a, _ = await t.request(cert, to="num")
    b, _ = await t.request(cert, to="hsum")
    results = await asyncio.gather(
        t.decide(a.request_id, credits=2), t.decide(b.request_id, credits=2), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, CertificationError)) == 1
    assert sum(e.credits for e in t.events(CreditRecognized)) == 2


async def test_decisions_are_final_and_a_repeat_is_idempotent(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    first, _ = await t.decide(pending.request_id, credits=2)
    again, new = await t.decide(pending.request_id, credits=2)
    assert again == first and not new
    same_without_credits, new = await t.decide(pending.request_id)
    assert same_without_credits == first and not new
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, "rejected", reason="changed our mind")
    assert caught.value.code == "decision_final"
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, credits=1)
    assert caught.value.code == "decision_final"
    assert len(t.events(CreditTransferDecided)) == 1 and len(t.events(CreditRecognized)) == 1
    repeat, new = await t.request(cert)  # the same request again is the decided one
    assert not new and repeat.status == "accepted"


async def test_a_rejection_needs_a_reason_and_recognises_nothing(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id, "rejected")
    assert caught.value.code == "reason_required"
    rejected, _ = await t.decide(pending.request_id, "rejected", reason="programme full")
    assert rejected.reason == "programme full" and t.events(CreditRecognized) == []
    [decision] = t.events(CreditTransferDecided)
    assert (decision.decision, decision.reason, decision.credits) == ("rejected", "programme full", None)


async def test_an_acceptance_needs_credits(t: Transfers) -> None:
    cert = await t.certificate()
    pending, _ = await t.request(cert)
    with pytest.raises(CertificationError) as caught:
        await t.decide(pending.request_id)
    assert caught.value.code == "credits_required"


async def test_deciding_an_unknown_request_is_not_found(t: Transfers) -> None:
    with pytest.raises(CertificationError) as caught:
        await t.decide("ctr-nope", credits=1)
    assert caught.value.code == "transfer_not_found"


async def test_listing_is_per_institution_on_either_side(t: Transfers) -> None:
    cert = await t.certificate()
    other = await t.certificate("edu-2")
    await t.request(cert, to="num")
    await t.request(other, to="hsum", educator="edu-2")
    assert len(await t.service.of_institution("must")) == 2
    assert [x.receiving_institution for x in await t.service.of_institution("num")] == ["num"]
    assert await t.service.of_institution("other") == []
    listed = (await t.service.of_institution("hsum"))[0]
    assert await t.service.get(listed.request_id, acting_institution="must") == listed
    with pytest.raises(CertificationError):
        await t.service.get(listed.request_id, acting_institution="num")
