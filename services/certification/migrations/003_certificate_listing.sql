-- Institution staff list and export certificates by institution and issue date (services/certification/listing.py).
CREATE INDEX IF NOT EXISTS certificates_institution_issued ON certificates (institution, issued_at, certificate_id);
CREATE INDEX IF NOT EXISTS certificates_issued ON certificates (issued_at, certificate_id);
CREATE INDEX IF NOT EXISTS educators_institution ON educators (institution, educator_id);
