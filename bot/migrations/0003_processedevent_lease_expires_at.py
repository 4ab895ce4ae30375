from datetime import timedelta

from django.db import migrations, models
from django.db.models import F


def lease_running_claims(apps, schema_editor):
    # Claims made before leases existed keep the five minutes they had (counted from their last update).
    ProcessedEvent = apps.get_model("bot", "ProcessedEvent")
    ProcessedEvent.objects.filter(status="processing").update(lease_expires_at=F("updated_at") + timedelta(minutes=5))


class Migration(migrations.Migration):

    dependencies = [
        ("bot", "0002_channel_settings_for_every_platform"),
    ]

    operations = [
        migrations.AddField(
            model_name="processedevent",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(lease_running_claims, migrations.RunPython.noop),
    ]
