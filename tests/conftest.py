"""Fixtures shared by the library's tests."""
from tests.folder_world import world  # noqa: F401  (the folder world, session-scoped)
