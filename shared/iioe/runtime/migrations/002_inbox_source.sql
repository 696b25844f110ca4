-- The inbox is keyed on (source, id), as CloudEvents defines an event's uniqueness: two partners may
-- both send id `evt-1`. Rows recorded before this migration keep source '' and still match that id
-- from any source (so nothing processed before the upgrade is applied twice).
ALTER TABLE inbox ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT '';
ALTER TABLE inbox DROP CONSTRAINT IF EXISTS inbox_pkey;
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (consumer, source, event_id);
