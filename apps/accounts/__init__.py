"""Teams, memberships with roles, and API tokens."""
