"""The moved tables take the answers app's names (renames: rows, keys and the foreign keys to them stay, the bot's
thread mappings' included), the answer indexes the names Django derives from them, and their content types (with
the permissions and admin log entries that point at them) move from the search app to this one."""

from django.db import migrations

MOVED = {"conversation", "answer", "feedback"}


def content_types_to_answers(apps, schema_editor):
    move_content_types(apps, schema_editor, "search", "answers")


def content_types_to_search(apps, schema_editor):
    move_content_types(apps, schema_editor, "answers", "search")


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
        ("answers", "0001_initial"),
        ("search", "0003_answer_models_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="conversation", table=None),
        migrations.AlterModelTable(name="answer", table=None),
        migrations.AlterModelTable(name="feedback", table=None),
        migrations.RenameIndex(model_name="answer", new_name="answers_ans_created_d8f26e_idx",
                               old_name="search_answ_created_a6121c_idx"),
        migrations.RenameIndex(model_name="answer", new_name="answers_ans_refused_c4bcf5_idx",
                               old_name="search_answ_refused_dd4c8d_idx"),
        migrations.RunPython(content_types_to_answers, content_types_to_search),
    ]
