"""The moved table takes the retrieval app's name (a rename: rows and the unique constraint stay), and its content
type (with the permissions and admin log entries that point at it) moves from the search app to this one."""

from django.db import migrations

MOVED = {"embeddingcacheentry"}


def content_types_to_retrieval(apps, schema_editor):
    move_content_types(apps, schema_editor, "search", "retrieval")


def content_types_to_search(apps, schema_editor):
    move_content_types(apps, schema_editor, "retrieval", "search")


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
        ("retrieval", "0001_initial"),
        ("search", "0004_embedding_cache_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="embeddingcacheentry", table=None),
        migrations.RunPython(content_types_to_retrieval, content_types_to_search),
    ]
