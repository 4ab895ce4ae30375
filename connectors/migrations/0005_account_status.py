"""Employee / guest / unknown stored on each user, so that "no identity" no longer reads as internal.

Existing users keep what they demonstrably had: at least one linked identity and none marked external →
employee; any external identity → guest; no identity at all → unknown (they lose "everyone except external
users" until an admin says otherwise).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def status_from_identities(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Account = apps.get_model("connectors", "Account")
    ExternalIdentity = apps.get_model("connectors", "ExternalIdentity")
    flags: dict[int, list[bool]] = {}
    for user_id, is_external in ExternalIdentity.objects.values_list("user_id", "is_external"):
        flags.setdefault(user_id, []).append(is_external)
    have = set(Account.objects.values_list("user_id", flat=True))
    accounts = []
    for user_id in User.objects.exclude(pk__in=have).values_list("pk", flat=True):
        external = flags.get(user_id)
        if not external:
            status = "unknown"
        elif any(external):
            status = "guest"
        else:
            status = "employee"
        accounts.append(Account(user_id=user_id, status=status))
    Account.objects.bulk_create(accounts, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('connectors', '0004_source_sync_lease'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Account',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('employee', 'Employee'), ('guest', 'Guest or contractor'), ('unknown', 'Unknown (not yet decided)')], default='unknown', max_length=16)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='account', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(status_from_identities, migrations.RunPython.noop),
    ]
