"""`python -m services.notifications`: one service process."""

from iioe.runtime.http import serve
from services.notifications.main import create_app
from services.notifications.settings import NotificationsSettings

settings = NotificationsSettings()
serve(create_app(settings), settings)
