"""Certification service: turns course results into programme certificates (Open Badges 3.0 VC-JWTs).

`domain` holds the pure programme rules and the catalogue, `credentials` builds, signs and verifies
the credentials; neither does I/O beyond reading the catalogue file, so both are unit-testable.
"""
