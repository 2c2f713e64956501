
import django.db.models.deletion
from typing import Any

from django.db import migrations, models


def from_events(apps: Any, schema_editor: Any) -> None:
    """Ratings recorded before this table existed were `rated` events; the first one per case counts."""
    Event, Rating = apps.get_model("cases", "Event"), apps.get_model("web", "Rating")
    seen: set[int] = set()
    for event in Event.objects.filter(kind="rated").order_by("at", "id").iterator():
        value = (event.data or {}).get("rating")
        if event.case_id not in seen and isinstance(value, int) and 1 <= value <= 5:
            seen.add(event.case_id)
            Rating.objects.create(case_id=event.case_id, value=value, at=event.at)


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0001_initial'),
        ('web', '0003_seed_reply_templates'),
    ]

    operations = [
        migrations.CreateModel(
            name='Rating',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('value', models.PositiveSmallIntegerField()),
                ('at', models.DateTimeField()),
                ('case', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='rating', to='cases.case')),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('value__gte', 1), ('value__lte', 5)), name='web_rating_value_1_to_5')],
            },
        ),
        migrations.RunPython(from_events, migrations.RunPython.noop),
    ]
