"""Worker and beat entry points, queue routing and the periodic schedule."""
