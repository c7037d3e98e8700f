"""Settings, split by concern. Every value that differs between machines comes from the
environment through the strict readers in :mod:`controlplane.env`; see README "Configuration".
"""

from .api import *  # noqa: F403
from .base import *  # noqa: F403
from .controlplane import *  # noqa: F403
from .database import *  # noqa: F403
from .logging import *  # noqa: F403
from .security import *  # noqa: F403
from .tasks import *  # noqa: F403
