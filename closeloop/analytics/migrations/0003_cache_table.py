"""The table behind the default cache (CLOSELOOP_CACHE_URL=db://closeloop_cache), made here so
that no `createcachetable` step is needed; also any other db:// table the settings name."""

from django.conf import settings
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

DEFAULT_TABLE = "closeloop_cache"


def _tables() -> list[str]:
    named = [c["LOCATION"] for c in settings.CACHES.values() if c["BACKEND"].endswith("db.DatabaseCache")]
    return sorted({DEFAULT_TABLE, *named})


def create(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    for table in _tables():
        command.create_table(schema_editor.connection.alias, table, dry_run=False)


def drop(apps, schema_editor):
    for table in _tables():
        if table in schema_editor.connection.introspection.table_names():
            schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(table)}")


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0002_case_facts"),
    ]

    operations = [
        migrations.RunPython(create, drop),
    ]
