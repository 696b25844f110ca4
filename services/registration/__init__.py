"""Registration service: educator identity and the institution catalogue."""
