import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))

from ansible_runner import ansible_playbook  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def run_playbook(tmp_path):
    """run_playbook(plays_or_path, **kwargs) -> Run; runs real ansible-playbook in tmp_path."""

    def run(playbook, **kwargs):
        return ansible_playbook(playbook, kwargs.pop("workdir", tmp_path), **kwargs)

    return run


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        pytest.fail("../shared (golden configs and schemas) must sit beside the checkout")
    return SHARED
