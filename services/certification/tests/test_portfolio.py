"""Faculty AI Portfolio: the read model, who owns it, the share link and the signed bundle — on the in-memory
unit of work (no NATS, no PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from iioe.events import CourseCompleted, EducatorRegistered, PortfolioEntryAdded, PracticeIntegrationReported
from services.certification.credentials import build_credential_claims, certificate_urn, educator_urn, verify_signature
from services.certification.domain import CertificationError, certificate_id_for
from services.certification.portfolio import PortfolioEntry, evidence_of
from services.certification.portfolio_usecases import Portfolios, new_share_id
from services.certification.reference import builtin_catalogue
from services.certification.tests.fake_portfolio import FakePortfolioUnitOfWork
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.tests.test_open_badges_schema import errors as ob_errors
from services.certification.usecases import Certification, MessageOrigin, RevokeCertificate

AI = "ai-in-higher-education"
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
PARTNER = "urn:iioe:partner:must-lms"
CATALOGUE = builtin_catalogue()
_ids = itertools.count()


class World:
    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        self.certification = Certification(self.uow, CATALOGUE, {"must": {}, "num": {}}, public_url="https://cert.test")
        self.share_ids = (f"share-{n}" for n in itertools.count(1))
        self.portfolios = Portfolios(
            FakePortfolioUnitOfWork(self.uow), self.certification, share_ids=lambda: next(self.share_ids)
        )

    async def register(self, educator: str, institution: str = "must") -> None:
        data = EducatorRegistered(
            educator_id=educator, institution=institution, language="en", role="educator", registered_at=T0
        )
        await self.certification.on_educator_registered(f"reg-{next(_ids)}", data)

    async def certify(self, educator: str) -> None:
        origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
        for course in CATALOGUE.programme(AI).course_ids:
            data = CourseCompleted(
                educator_id=educator, institution="must", course_id=course, score=90.0, completed_at=T0
            )
            await self.certification.on_course_completed(f"done-{next(_ids)}", data, origin)

    async def entry(
        self,
        educator: str,
        entry_id: str,
        *,
        title: str = "AI-assisted lab",
        added_on: date = date(2025, 4, 2),
        institution: str = "must",
        link: str | None = None,
        event_id: str | None = None,
        source: str = PARTNER,
    ) -> None:
        data = PortfolioEntryAdded(
            entry_id=entry_id,
            educator_id=educator,
            institution=institution,
            kind="lesson_plan",
            title=title,
            link=link,
            added_on=added_on,
        )
        await self.portfolios.on_event(source, event_id or f"entry-{next(_ids)}", data)

    async def report(
        self,
        educator: str,
        integrates_ai: bool,
        reported_on: date,
        *,
        event_id: str | None = None,
        source: str = PARTNER,
        institution: str = "must",
    ) -> None:
        data = PracticeIntegrationReported(
            educator_id=educator,
            institution=institution,
            integrates_ai=integrates_ai,
            disciplines=["physics"],
            reported_on=reported_on,
        )
        await self.portfolios.on_event(source, event_id or f"report-{next(_ids)}", data)


@pytest.fixture
def world() -> World:
    return World()


# --- the read model ------------------------------------------------------------------------------------------


async def test_portfolio_holds_certificates_progress_entries_and_reports_newest_first(world: World) -> None:
    await world.register("edu-1")
    await world.certify("edu-1")
    await world.entry("edu-1", "e-1", title="Old plan", added_on=date(2025, 3, 1))
    await world.entry("edu-1", "e-2", title="New plan", added_on=date(2025, 5, 1), link="https://lms.test/e-2")
    await world.report("edu-1", True, date(2025, 3, 1))
    await world.report("edu-1", False, date(2025, 6, 1))

    portfolio = await world.portfolios.portfolio("edu-1")

    assert portfolio.institution == "must" and portfolio.educator is not None
    assert [c.certificate_id for c in portfolio.certificates] == [certificate_id_for("edu-1", AI)]
    assert portfolio.certificates[0].status == "active"
    assert portfolio.progress is not None and any(
        p.programme_id == AI and p.earned for p in portfolio.progress.programmes
    )
    assert [e.entry_id for e in portfolio.entries] == ["e-2", "e-1"]
    assert [r.reported_on for r in portfolio.reports] == [date(2025, 6, 1), date(2025, 3, 1)]
    assert portfolio.integrates_ai is False  # the latest report counts
    assert portfolio.share is None


async def test_a_redelivered_event_is_applied_once_but_the_same_id_from_another_source_is_another_event(
    world: World,
) -> None:
    await world.register("edu-1")
    for _ in range(2):
        await world.report("edu-1", True, date(2025, 4, 1), event_id="evt-1")
    await world.report("edu-1", True, date(2025, 4, 1), event_id="evt-1", source="urn:iioe:partner:other")

    assert len((await world.portfolios.portfolio("edu-1")).reports) == 2


async def test_a_resent_entry_corrects_it_and_an_older_version_arriving_late_does_not(world: World) -> None:
    await world.register("edu-1")
    await world.entry("edu-1", "e-1", title="Draft", added_on=date(2025, 4, 2))
    await world.entry("edu-1", "e-1", title="Final", added_on=date(2025, 4, 3))
    await world.entry("edu-1", "e-1", title="Stale", added_on=date(2025, 4, 1))

    [entry] = (await world.portfolios.portfolio("edu-1")).entries
    assert (entry.title, entry.added_on) == ("Final", date(2025, 4, 3))


async def test_an_event_naming_another_institution_than_the_registration_is_refused(world: World) -> None:
    await world.register("edu-1", "must")
    with pytest.raises(CertificationError) as refused:
        await world.entry("edu-1", "e-1", institution="num")
    assert refused.value.code == "institution_mismatch"
    with pytest.raises(CertificationError):
        await world.report("edu-1", True, date(2025, 4, 1), institution="num")
    portfolio = await world.portfolios.portfolio("edu-1")
    assert portfolio.entries == [] and portfolio.reports == []


async def test_records_before_registration_are_kept_and_the_registration_decides_the_owner(world: World) -> None:
    await world.entry("edu-1", "e-1", institution="num")
    early = await world.portfolios.portfolio("edu-1")
    assert early.institution == "num" and early.educator is None and early.progress is None
    assert [e.entry_id for e in early.entries] == ["e-1"]

    await world.register("edu-1", "must")  # registration names another institution: its records stay hidden
    await world.entry("edu-1", "e-2")
    later = await world.portfolios.portfolio("edu-1")
    assert later.institution == "must" and [e.entry_id for e in later.entries] == ["e-2"]


async def test_an_unknown_educator_has_no_portfolio_and_nothing_to_share(world: World) -> None:
    for action in (world.portfolios.portfolio, world.portfolios.share, world.portfolios.owner):
        with pytest.raises(CertificationError) as refused:
            await action("nobody")
        assert refused.value.code == "educator_not_found"


# --- the share link --------------------------------------------------------------------------------------------


async def test_one_active_link_per_educator_and_a_switched_off_link_is_gone_for_good(world: World) -> None:
    await world.register("edu-1")
    first, created = await world.portfolios.share("edu-1")
    again, created_again = await world.portfolios.share("edu-1")
    assert created and not created_again and again == first
    assert (await world.portfolios.portfolio("edu-1")).share == first
    assert (await world.portfolios.shared(first.share_id)).share == first

    closed = await world.portfolios.unshare("edu-1")
    assert closed is not None and closed.revoked_at is not None
    assert await world.portfolios.unshare("edu-1") is None  # switching off again changes nothing
    with pytest.raises(CertificationError) as gone:
        await world.portfolios.shared(first.share_id)
    assert gone.value.code == "portfolio_share_revoked"
    assert (await world.portfolios.portfolio("edu-1")).share is None

    second, created = await world.portfolios.share("edu-1")
    assert created and second.share_id != first.share_id
    with pytest.raises(CertificationError) as still_gone:
        await world.portfolios.shared(first.share_id)
    assert still_gone.value.code == "portfolio_share_revoked"
    with pytest.raises(CertificationError) as unknown:
        await world.portfolios.shared("no-such-link")
    assert unknown.value.code == "portfolio_share_not_found"


async def test_the_shared_bundle_is_a_presentation_signed_by_the_service_holding_the_credentials(
    world: World,
) -> None:
    await world.register("edu-1")
    await world.certify("edu-1")
    await world.entry("edu-1", "e-1", title="Syllabus with AI", link="https://lms.test/e-1")
    await world.report("edu-1", True, date(2025, 4, 1))
    share, _ = await world.portfolios.share("edu-1")

    bundle = await world.portfolios.shared(share.share_id)

    jwks = (await world.certification.keyring()).jwks()
    kid, header, claims = verify_signature(bundle.presentation, jwks)
    assert header["alg"] == "EdDSA" and kid == jwks["keys"][0]["kid"]
    vp = claims["vp"]
    assert "VerifiablePresentation" in vp["type"] and vp["holder"] == educator_urn("edu-1") == claims["sub"]
    assert claims["iss"] == world.certification.issuer.id
    [credential] = vp["verifiableCredential"]
    assert credential == bundle.portfolio.certificates[0].credential
    assert verify_signature(credential, jwks)[2]["vc"]["credentialSubject"]["id"] == educator_urn("edu-1")
    assert vp["portfolio"]["url"] == f"https://cert.test/portfolio/{share.share_id}"
    assert vp["portfolio"]["entries"] == [
        {
            "entryId": "e-1",
            "kind": "lesson_plan",
            "title": "Syllabus with AI",
            "link": "https://lms.test/e-1",
            "addedOn": "2025-04-02",
        }
    ]
    assert vp["portfolio"]["integratesAi"] is True
    [summary] = vp["portfolio"]["certificates"]
    assert summary["id"] == certificate_urn(certificate_id_for("edu-1", AI)) and summary["status"] == "active"


async def test_a_revoked_credential_leaves_the_bundle_but_stays_listed_with_its_status(world: World) -> None:
    await world.register("edu-1")
    await world.certify("edu-1")
    await world.certification.revoke(RevokeCertificate(certificate_id_for("edu-1", AI), "fraud", "ops"))
    share, _ = await world.portfolios.share("edu-1")

    vp = (await world.portfolios.shared(share.share_id)).claims["vp"]

    assert vp["verifiableCredential"] == []
    assert [c["status"] for c in vp["portfolio"]["certificates"]] == ["revoked"]


def test_share_ids_are_unguessable() -> None:
    ids = {new_share_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) >= 32 for i in ids)


# --- Open Badges evidence ----------------------------------------------------------------------------------------


def test_evidence_names_the_entries_added_by_the_issuance_day_newest_first() -> None:
    def entry(entry_id: str, day: int, link: str | None = None) -> PortfolioEntry:
        return PortfolioEntry(
            "edu-1", entry_id, "must", "reflection", f"Entry {entry_id}", link, date(2025, 4, day), PARTNER, entry_id
        )

    entries = [entry("a", 1, "https://lms.test/a"), entry("b", 3), entry("c", 9)]
    evidence = evidence_of(entries, datetime(2025, 4, 3, 12, 0, tzinfo=UTC))

    assert evidence == [
        {"type": ["Evidence"], "name": "Entry b", "genre": "Reflection"},
        {"id": "https://lms.test/a", "type": ["Evidence"], "name": "Entry a", "genre": "Reflection"},
    ]


def test_a_credential_built_with_portfolio_evidence_carries_it_and_stays_a_valid_achievement_credential() -> None:
    entry = PortfolioEntry(
        "edu-1", "e-1", "must", "lesson_plan", "Lab", "https://lms.test/e-1", date(2025, 3, 1), PARTNER, "e-1"
    )
    programme = CATALOGUE.programme(AI)

    with_evidence = build_credential_claims(
        certificate_id="c-1", educator_id="edu-1", programme=programme, issued_at=T0, evidence=evidence_of([entry], T0)
    )["vc"]
    without = build_credential_claims(certificate_id="c-1", educator_id="edu-1", programme=programme, issued_at=T0)[
        "vc"
    ]

    assert with_evidence["evidence"] == [
        {"id": "https://lms.test/e-1", "type": ["Evidence"], "name": "Lab", "genre": "Lesson plan"}
    ]
    assert "evidence" not in without and ob_errors(with_evidence) == []
