from tests.console.conftest import empty_cache  # noqa: F401 - each test starts with an empty local cache
