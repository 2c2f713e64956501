"""Channel tests share the intake fixtures (raw store, mail factory, Dovecot)."""

from closeloop.intake.tests.conftest import (  # noqa: F401
    dovecot,
    mail,
    raw_store,
)
