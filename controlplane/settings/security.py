from __future__ import annotations

import secrets

from controlplane.env import env_bool, env_int, env_required, env_str

from .base import PRODUCTION, VAR_DIR


def _development_secret_key() -> str:
    """A random key kept under var/ so sessions survive restarts on a developer machine.

    Production never gets here: it must set SECRET_KEY or SECRET_KEY_FILE.
    """
    path = VAR_DIR / "dev-secret-key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key, encoding="utf-8")
        path.chmod(0o600)
        return key


if PRODUCTION:
    SECRET_KEY = env_required("SECRET_KEY")
else:
    SECRET_KEY = env_str("SECRET_KEY") or _development_secret_key()

# Secret used to encrypt stored credentials (chat webhook secrets and the like). Defaults to
# one derived from SECRET_KEY; set it separately to rotate SECRET_KEY without losing them.
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY") or SECRET_KEY

# Behind a TLS-terminating proxy (nginx, an ingress), trust its X-Forwarded-Proto header.
if env_bool("TRUST_X_FORWARDED_PROTO", default=PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Number of trusted proxies in front of the app: X-Forwarded-For is read this many hops back.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# /healthz and /readyz are probed over plain HTTP by kubelets and load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Username/password logins, with failed attempts throttled (LOGIN_FAILURE_LIMIT).
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.ThrottledModelBackend"]
