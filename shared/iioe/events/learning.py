"""Events published by partner learning platforms."""

from __future__ import annotations

from iioe.events.common import EventData, Identifier, InstitutionCode, Language, Rating, Score, Timestamp


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


# .. event_type: org.iioe.learning.course_evaluated.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.course_evaluated.v1 (stream IIOE_EVENTS)
# .. producer: partners (the IIOE learning platform, university LMSs)
# .. consumers: analytics (course ratings)
# .. personal_data: none — two ratings, no free-text comment
class CourseEvaluated(EventData):
    """An educator rated a course: content and usefulness, integers 1–5."""

    educator_id: Identifier
    institution: InstitutionCode
    course_id: Identifier
    language: Language
    content_rating: Rating
    usefulness_rating: Rating
