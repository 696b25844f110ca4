"""`python -m services.certification`: one service process."""

from iioe.runtime.http import serve
from services.certification.main import create_app
from services.certification.settings import CertificationSettings

settings = CertificationSettings()
serve(create_app(settings), settings)
