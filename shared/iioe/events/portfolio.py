"""Events of the educators' teaching portfolios (contract v1.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool

from iioe.events.common import Day, EventData, Identifier, InstitutionCode, Label, Link

EntryKind = Literal["lesson_plan", "syllabus_change", "teaching_artefact", "reflection"]


# .. event_type: org.iioe.portfolio.entry_added.v1   (contract v1.1; subject name portfolio_entry_added)
# .. subject: iioe.events.<institution>.portfolio_entry_added.v1 (stream IIOE_EVENTS)
# .. producer: partners, platform
# .. consumers: analytics, certification (Faculty AI Portfolio read model)
# .. personal_data: none — a title and a link, never the entry's content
class PortfolioEntryAdded(EventData):
    """An educator added an entry to their teaching portfolio."""

    entry_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    kind: EntryKind
    title: Label
    link: Link | None = None
    added_on: Day


# .. event_type: org.iioe.portfolio.practice_integration_reported.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.practice_integration_reported.v1 (stream IIOE_EVENTS)
# .. producer: partners, platform
# .. consumers: analytics (educators integrating AI: the latest report counts), certification (portfolio)
# .. personal_data: none
class PracticeIntegrationReported(EventData):
    """An educator reported whether their teaching practice integrates AI."""

    educator_id: Identifier
    institution: InstitutionCode
    integrates_ai: StrictBool
    disciplines: Annotated[list[Label], Field(max_length=50)] | None = None
    reported_on: Day
