"""The operator's fixtures (a real operator, nats-server and API emulator) for intake fuzzing."""

from tests.operator.conftest import fleet, start_operator

__all__ = ["fleet", "start_operator"]
