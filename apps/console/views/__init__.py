"""Views of the web console, one module per page (see :mod:`.base` for what they share)."""
