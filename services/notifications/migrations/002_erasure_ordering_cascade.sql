-- Contract v1.1: erasure, ordering of certificate mails, cascade training and monthly digests.

-- `held`: a certificate mail waiting for the issued mail of the same certificate (never overtakes it).
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('held', 'awaiting_contact', 'pending', 'sending', 'sent', 'failed', 'expired'));
-- Institution (an institution's token sees only its own) and certificate (ordering) of each row.
ALTER TABLE notifications ADD COLUMN institution text;
ALTER TABLE notifications ADD COLUMN certificate_id text;
UPDATE notifications SET institution = context ->> 'institution',
    certificate_id = CASE WHEN kind LIKE 'certificate_%' THEN context ->> 'certificate_id' END;
CREATE INDEX notifications_by_certificate ON notifications (certificate_id, kind) WHERE certificate_id IS NOT NULL;
CREATE INDEX notifications_by_institution ON notifications (institution, created_at);

-- Educators whose personal data was erased (EducatorErased): their ids only, so a replayed contact
-- or event never brings the data back.
CREATE TABLE erasures (
    educator_id text PRIMARY KEY,
    erased_at   timestamptz NOT NULL
);

-- Cascade training, from TrainingSessionHeld / TraineeAttended (either order): ids only, no names.
CREATE TABLE training_sessions (
    session_id        text PRIMARY KEY,
    institution       text NOT NULL,
    master_teacher_id text NOT NULL,
    region            text NOT NULL,
    mode              text NOT NULL,
    held_on           date NOT NULL,
    language          text NOT NULL
);
CREATE INDEX training_sessions_by_master ON training_sessions (master_teacher_id, held_on);
CREATE TABLE attendances (
    session_id  text NOT NULL,
    educator_id text NOT NULL,
    institution text NOT NULL,
    event_id    text NOT NULL,
    PRIMARY KEY (session_id, educator_id)
);
CREATE INDEX attendances_by_educator ON attendances (educator_id);

-- Trainees' progress for the monthly digest (course_completed, certificate_issued).
CREATE TABLE course_completions (
    educator_id text NOT NULL,
    course_id   text NOT NULL,
    PRIMARY KEY (educator_id, course_id)
);
CREATE TABLE certified (
    educator_id    text NOT NULL,
    certificate_id text NOT NULL,
    PRIMARY KEY (educator_id, certificate_id)
);
-- One digest per (master teacher, month).
CREATE TABLE digests (
    educator_id text NOT NULL,
    month       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (educator_id, month)
);
