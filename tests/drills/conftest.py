"""The fixtures the drill tests share with other suites: the `cli` runner (tests/test_cli.py)
and the gateway simulator `sim` (tests/dispatch/conftest.py)."""

from tests.dispatch.conftest import sim  # noqa: F401
from tests.test_cli import cli  # noqa: F401
