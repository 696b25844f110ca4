"""`python -m services.analytics`: one service process."""

from iioe.runtime.http import serve
from services.analytics.main import create_app
from services.analytics.settings import AnalyticsSettings

settings = AnalyticsSettings()
serve(create_app(settings), settings)
