"""AuditEvent is the audit app's now (audit 0001): removed from the console's state only, its rows stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
