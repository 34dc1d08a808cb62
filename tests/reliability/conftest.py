import pytest


def pytest_collection_modifyitems(items):
    """Reliability scenarios run for minutes at full size: they get ten instead of two."""
    for item in items:
        if "reliability" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(600))
