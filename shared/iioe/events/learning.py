"""Events published by partner learning platforms."""

from __future__ import annotations

from iioe.events.common import EventData, Identifier, InstitutionCode, Language, Score, Timestamp


# .. event_type: org.iioe.learning.course_completed.v1
# .. subject: iioe.events.<institution>.course_completed.v1 (stream IIOE_EVENTS)
# .. producer: partner LMSs (the IIOE learning platform, university LMSs)
# .. consumers: certification, analytics
# .. personal_data: none
class CourseCompleted(EventData):
    """An educator finished a course attempt with a score (0–100)."""

    educator_id: Identifier
    institution: InstitutionCode
    course_id: Identifier
    score: Score
    completed_at: Timestamp
    language: Language | None = None
