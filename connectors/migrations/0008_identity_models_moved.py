"""ExternalIdentity, Account, Group and GroupMembership are the identity app's now (identity 0001): removed from the
connectors' state only, their rows stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("connectors", "0007_source_sync_state"),
        ("identity", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="GroupMembership"),
                migrations.DeleteModel(name="Group"),
                migrations.DeleteModel(name="ExternalIdentity"),
                migrations.DeleteModel(name="Account"),
            ],
            database_operations=[],
        ),
    ]
