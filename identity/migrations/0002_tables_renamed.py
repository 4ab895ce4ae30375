"""The moved tables take the identity app's names (renames: rows, keys and the foreign keys between them stay), and
their content types (with the permissions and admin log entries that point at them) move from the connectors app
to this one."""

from django.db import migrations

MOVED = {"externalidentity", "account", "group", "groupmembership"}


def content_types_to_identity(apps, schema_editor):
    move_content_types(apps, schema_editor, "connectors", "identity")


def content_types_to_connectors(apps, schema_editor):
    move_content_types(apps, schema_editor, "identity", "connectors")


def move_content_types(apps, schema_editor, old_label: str, new_label: str) -> None:
    # Only where the new label has none yet: a content type Django created for it meanwhile wins.
    ContentType = apps.get_model("contenttypes", "ContentType")
    types = ContentType.objects.using(schema_editor.connection.alias)
    for model in MOVED:
        if not types.filter(app_label=new_label, model=model).exists():
            types.filter(app_label=old_label, model=model).update(app_label=new_label)
    ContentType.objects.clear_cache()


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0001_initial"),
        ("connectors", "0008_identity_models_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="externalidentity", table=None),
        migrations.AlterModelTable(name="account", table=None),
        migrations.AlterModelTable(name="group", table=None),
        migrations.AlterModelTable(name="groupmembership", table=None),
        migrations.RunPython(content_types_to_identity, content_types_to_connectors),
    ]
