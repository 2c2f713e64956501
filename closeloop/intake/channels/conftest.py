"""Channel tests share the intake fixtures (raw store, mail factory, Dovecot)."""

from closeloop.intake.tests.conftest import (  # noqa: F401
    django_db_modify_db_settings,
    dovecot,
    mail,
    raw_store,
)
