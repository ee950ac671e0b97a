from __future__ import annotations

import pytest

from report_tree import make_tree


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path)
