"""Suite-wide: under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`),
every end-to-end run (marked slow) goes to one worker, in sequence, so two
loaded backends never compete for the machine's two cores and their timing
assertions stay meaningful; the light tests run beside them on the other."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.xdist_group("end-to-end"))
