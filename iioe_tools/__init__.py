"""IIOE application tools: the `iioe` command, embedded servers, simulation and AsyncAPI generation.

They sit above the services (and import them); nothing in `shared/iioe` or `services` imports them.
"""
