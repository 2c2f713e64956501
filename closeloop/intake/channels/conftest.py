"""Channel tests share the intake fixtures (raw store, mail factory, Dovecot)."""

from closeloop.intake.tests.conftest import dovecot, mail, raw_store  # noqa: F401
