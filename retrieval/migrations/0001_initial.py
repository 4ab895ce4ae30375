"""EmbeddingCacheEntry moves here from the search app, keeping its rows: this migration only tells Django's state
that the model is retrieval's now (its table is still search_embeddingcacheentry); search 0004 removes it from the
search app's state and 0002 here renames the table."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("search", "0003_answer_models_moved"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EmbeddingCacheEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("model_name", models.CharField(max_length=300)),
                        ("content_hash", models.CharField(help_text="sha256 of the exact text the model embedded",
                                                          max_length=64)),
                        ("dimensions", models.PositiveIntegerField()),
                        ("vector", models.BinaryField(help_text="float32, little-endian")),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "search_embeddingcacheentry",
                        "constraints": [models.UniqueConstraint(fields=("model_name", "content_hash"),
                                                                name="unique_embedding_per_model_and_text")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
