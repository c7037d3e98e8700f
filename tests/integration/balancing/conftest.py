from tests.integration.balancing.nginx import nginx  # noqa: F401 - shared fixture
