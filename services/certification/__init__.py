"""Certification service: turns course results into programme certificates (Open Badges 3.0 VC-JWTs).

The service template: `handlers`/`http` (entry points) → `usecases` (application services on the
`ports.UnitOfWork`) → `domain` + `catalogue` (pure rules); `store` implements the port on PostgreSQL,
`credentials` builds, signs and verifies credentials, `main` composes it all.
"""
