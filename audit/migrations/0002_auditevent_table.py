"""The moved AuditEvent table takes the audit app's name (a rename: rows, keys and foreign keys stay), its indexes
the names Django derives from it, and its content type (with the permissions and admin log entries that point at
it) moves from the console app to this one."""

from django.db import migrations

MOVED = {"auditevent"}


def content_types_to_audit(apps, schema_editor):
    move_content_types(apps, schema_editor, "console", "audit")


def content_types_to_console(apps, schema_editor):
    move_content_types(apps, schema_editor, "audit", "console")


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
        ("audit", "0001_initial"),
        ("console", "0002_auditevent_moved_to_audit"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="auditevent", table=None),
        migrations.RenameIndex(model_name="auditevent", new_name="audit_audit_action_0c0ad1_idx",
                               old_name="console_aud_action_6f0ebf_idx"),
        migrations.RenameIndex(model_name="auditevent", new_name="audit_audit_object__0e78a5_idx",
                               old_name="console_aud_object__a166f0_idx"),
        migrations.RunPython(content_types_to_audit, content_types_to_console),
    ]
