-- Analytics projections. Only ids, codes, roles and timestamps: no names, e-mails or raw payloads.
-- Months are stored as 'YYYY-MM' in the service's reporting time zone (computed by the store's SQL).

-- One row per educator seen in any event. `registered_at` is NULL until EducatorRegistered
-- arrives (a completion may come first); the flags are recomputed from the fact tables below.
CREATE TABLE educators (
    educator_id            text PRIMARY KEY,
    institution            text NOT NULL,
    role                   text,
    registered_at          timestamptz,
    registered_month       text,
    started                boolean NOT NULL DEFAULT false,
    programme_courses_done smallint NOT NULL DEFAULT 0,
    programme_completed_at timestamptz,
    programme_month        text,
    certified              boolean NOT NULL DEFAULT false
);
CREATE INDEX educators_institution ON educators (institution);
CREATE INDEX educators_registered_month ON educators (registered_month) WHERE registered_month IS NOT NULL;

-- First completion of each course per educator (any score): the programme rule needs the set,
-- and the earliest date makes the completion month independent of arrival order.
CREATE TABLE educator_courses (
    educator_id        text NOT NULL,
    course_id          text NOT NULL,
    first_completed_at timestamptz NOT NULL,
    PRIMARY KEY (educator_id, course_id)
);

-- CourseCompleted events counted per (institution, course, month): additive, so order-free.
CREATE TABLE course_completion_counts (
    institution text NOT NULL,
    course_id   text NOT NULL,
    month       text NOT NULL,
    completions bigint NOT NULL,
    PRIMARY KEY (institution, course_id, month)
);

-- Certificates by natural key; a revocation may arrive before its issuance (then issued_at is NULL).
CREATE TABLE certificates (
    certificate_id text PRIMARY KEY,
    educator_id    text NOT NULL,
    institution    text NOT NULL,
    programme_id   text,
    credits        double precision,
    issued_at      timestamptz,
    issued_month   text,
    revoked_at     timestamptz,
    revoked_month  text
);
CREATE INDEX certificates_educator ON certificates (educator_id);

CREATE TABLE credit_recognitions (
    recognition_id        text PRIMARY KEY,
    certificate_id        text NOT NULL,
    educator_id           text NOT NULL,
    institution           text NOT NULL,
    receiving_institution text NOT NULL,
    credits               double precision NOT NULL,
    recognized_at         timestamptz NOT NULL,
    month                 text NOT NULL
);
