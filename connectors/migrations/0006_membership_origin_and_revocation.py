"""Who owns a group membership (the source's sync or an admin), and revocations that outlast the next sync.

Memberships of groups a source synced came from that source; those of groups no source owns were added here.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def origin_from_group(apps, schema_editor):
    GroupMembership = apps.get_model("connectors", "GroupMembership")
    GroupMembership.objects.filter(group__source__isnull=False).update(origin="source")


class Migration(migrations.Migration):

    dependencies = [
        ('connectors', '0005_account_status'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='groupmembership',
            name='origin',
            field=models.CharField(choices=[('source', 'Synced from the source'), ('local', 'Added in Citewise')], default='local', max_length=16),
        ),
        migrations.AddField(
            model_name='groupmembership',
            name='revoked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='groupmembership',
            name='revoked_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(origin_from_group, migrations.RunPython.noop),
    ]
