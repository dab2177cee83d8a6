"""The least a Django project needs to send mail: no database, no apps."""

SECRET_KEY = "example-only"  # noqa: S105
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "signup.urls"
DATABASES: dict[str, dict[str, str]] = {}
INSTALLED_APPS: list[str] = []
DEFAULT_FROM_EMAIL = "Example Shop <hello@shop.example>"
# Production settings would name the real relay here; the tests point these at the sandbox.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp.shop.example"
EMAIL_PORT = 587
