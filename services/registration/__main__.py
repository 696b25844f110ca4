"""`python -m services.registration`: one service process."""

from iioe.runtime.http import serve
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings

settings = RegistrationSettings()
serve(create_app(settings), settings)
