-- Contract v1.1 projections (section 9/10): roles, suspensions, the cascade, practice reports,
-- course evaluations and credit transfers. Ids, codes, ratings and dates only: no names, no titles.

ALTER TABLE educators
    ADD COLUMN role_now  text,
    ADD COLUMN attended      boolean NOT NULL DEFAULT false,
    ADD COLUMN integrates_ai boolean,
    ADD COLUMN language      text;
UPDATE educators SET role_now = role;

ALTER TABLE certificates ADD COLUMN suspended boolean NOT NULL DEFAULT false;

-- The language of each first completion (CourseCompleted.language, optional).
ALTER TABLE educator_courses ADD COLUMN language text;

-- Every role change (the current role is recomputed from them; the history serves dated reports).
CREATE TABLE role_changes (
    educator_id text NOT NULL,
    changed_at  timestamptz NOT NULL,
    role        text NOT NULL,
    PRIMARY KEY (educator_id, changed_at, role)
);

-- Every suspension (suspended = true) and reinstatement (false) of a certificate.
CREATE TABLE certificate_status_changes (
    certificate_id text NOT NULL,
    at             timestamptz NOT NULL,
    suspended      boolean NOT NULL,
    PRIMARY KEY (certificate_id, at, suspended)
);

CREATE TABLE training_sessions (
    session_id        text PRIMARY KEY,
    institution       text NOT NULL,
    master_teacher_id text NOT NULL,
    region            text NOT NULL,
    mode              text NOT NULL,
    held_on           date NOT NULL,
    language          text NOT NULL
);
CREATE INDEX training_sessions_master ON training_sessions (master_teacher_id);

-- Who attended which session (the session may be known later than its attendance).
CREATE TABLE session_attendance (
    session_id  text NOT NULL,
    educator_id text NOT NULL,
    PRIMARY KEY (session_id, educator_id)
);
CREATE INDEX session_attendance_educator ON session_attendance (educator_id);

-- Every practice report's answer per day (the latest counts; the history serves dated reports).
CREATE TABLE practice_reports (
    educator_id   text NOT NULL,
    reported_on   date NOT NULL,
    integrates_ai boolean NOT NULL,
    PRIMARY KEY (educator_id, reported_on, integrates_ai)
);

-- The latest evaluation of a course by an educator (a re-evaluation replaces it).
CREATE TABLE course_evaluations (
    educator_id       text NOT NULL,
    course_id         text NOT NULL,
    institution       text NOT NULL,
    language          text NOT NULL,
    content_rating    smallint NOT NULL,
    usefulness_rating smallint NOT NULL,
    evaluated_at      timestamptz NOT NULL,
    event_id          text NOT NULL,
    PRIMARY KEY (educator_id, course_id)
);

CREATE TABLE credit_transfer_requests (
    request_id            text PRIMARY KEY,
    educator_id           text NOT NULL,
    institution           text NOT NULL,
    certificate_id        text NOT NULL,
    receiving_institution text NOT NULL,
    requested_at          timestamptz NOT NULL
);

CREATE TABLE credit_transfer_decisions (
    request_id            text PRIMARY KEY,
    educator_id           text NOT NULL,
    institution           text NOT NULL,
    receiving_institution text NOT NULL,
    decision              text NOT NULL,
    credits               double precision,
    decided_at            timestamptz NOT NULL
);
