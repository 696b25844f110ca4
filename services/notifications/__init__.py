"""Notifications service: tells educators, in their own language, about registration and certificates.

This package holds the pure building blocks (template rendering, e-mail delivery, Standard Webhooks
signing and delivery); the NATS handlers, store and HTTP API are wired on top of them.
"""
