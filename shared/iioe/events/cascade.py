"""Events of the cascade training model: master teachers train educators (contract v1.1)."""

from __future__ import annotations

from typing import Literal

from iioe.events.common import Day, EventData, Identifier, InstitutionCode, Label, Language

SessionMode = Literal["online", "face_to_face", "hybrid"]


# .. event_type: org.iioe.cascade.training_session_held.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.training_session_held.v1 (stream IIOE_EVENTS; the master teacher's)
# .. producer: partners, platform
# .. consumers: analytics (training sessions, cascade)
# .. personal_data: none — the master teacher is named by id only
class TrainingSessionHeld(EventData):
    """A master teacher held a training session."""

    session_id: Identifier
    institution: InstitutionCode
    master_teacher_id: Identifier
    region: Label
    mode: SessionMode
    held_on: Day
    language: Language


# .. event_type: org.iioe.cascade.trainee_attended.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.trainee_attended.v1 (stream IIOE_EVENTS; the trainee's institution)
# .. producer: partners, platform
# .. consumers: analytics (trainees reached, second-generation reach)
# .. personal_data: none
class TraineeAttended(EventData):
    """An educator attended a training session (possibly another institution's); one event per trainee."""

    session_id: Identifier
    institution: InstitutionCode
    educator_id: Identifier
