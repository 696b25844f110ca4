"""Machine-readable reason codes for dead letters and error replies (contract section 6)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_ATTRIBUTE = "missing_attribute"
    INVALID_ATTRIBUTE = "invalid_attribute"
    UNSUPPORTED_SPECVERSION = "unsupported_specversion"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_DATA = "invalid_data"
    SUBJECT_MISMATCH = "subject_mismatch"
    """The subject is not the type's subject rule (wrong stream root, name or major, or unparseable)."""
    SUBJECT_INSTITUTION_MISMATCH = "subject_institution_mismatch"
    """The subject's institution token differs from `data.institution` (never re-drivable as is)."""
    UNKNOWN_COURSE = "unknown_course"
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    INSTITUTION_MISMATCH = "institution_mismatch"
    """Certification: a completion whose institution differs from the educator's registered one."""
    EDUCATOR_UNKNOWN = "educator_unknown"
    """Certification: a completion parked for an educator whose registration never came (within the limit)."""
    PROCESSING_FAILED = "processing_failed"
