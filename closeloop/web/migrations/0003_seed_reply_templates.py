"""The default reply templates, so a fresh install offers them before anyone edits them in admin."""

from typing import Any

from django.db import migrations


def seed(apps: Any, schema_editor: Any) -> None:
    from closeloop.web.replies import seed_defaults

    seed_defaults(apps.get_model("web", "ReplyTemplate"), apps.get_model("cases", "RequestType"))


class Migration(migrations.Migration):

    dependencies = [
        ("web", "0002_reply_templates"),
    ]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
