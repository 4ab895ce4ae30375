"""ExternalIdentity, Account, Group and GroupMembership move here from the connectors app, keeping their rows: this
migration only tells Django's state that the models are identity's now (their tables are still connectors_*);
connectors 0008 removes them from the connectors' state and 0002 here renames the tables."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("connectors", "0007_source_sync_state"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ExternalIdentity",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("principal", models.CharField(max_length=500, unique=True)),
                        ("is_external", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                   related_name="identities", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "connectors_externalidentity"},
                ),
                migrations.CreateModel(
                    name="Account",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("status", models.CharField(choices=[("employee", "Employee"),
                                                             ("guest", "Guest or contractor"),
                                                             ("unknown", "Unknown (not yet decided)")],
                                                    default="unknown", max_length=16)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                                      related_name="account", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "connectors_account"},
                ),
                migrations.CreateModel(
                    name="Group",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("principal", models.CharField(max_length=500, unique=True)),
                        ("name", models.CharField(blank=True, max_length=300)),
                        ("synced_at", models.DateTimeField(auto_now=True)),
                        ("source", models.ForeignKey(blank=True, null=True,
                                                     on_delete=django.db.models.deletion.CASCADE,
                                                     related_name="groups", to="connectors.source")),
                    ],
                    options={"db_table": "connectors_group"},
                ),
                migrations.CreateModel(
                    name="GroupMembership",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("member", models.CharField(db_index=True, max_length=500)),
                        ("origin", models.CharField(choices=[("source", "Synced from the source"),
                                                             ("local", "Added in Citewise")],
                                                    default="local", max_length=16)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("group", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                    related_name="memberships", to="identity.group")),
                        ("revoked_by", models.ForeignKey(blank=True, null=True,
                                                         on_delete=django.db.models.deletion.SET_NULL,
                                                         related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "db_table": "connectors_groupmembership",
                        "constraints": [models.UniqueConstraint(fields=("group", "member"),
                                                                name="unique_group_member")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
