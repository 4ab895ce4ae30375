"""EmbeddingCacheEntry is the retrieval app's now (retrieval 0001): removed from the search app's state only, its
rows stay. The search app keeps no models; its migrations stay for the databases that applied them."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0003_answer_models_moved"),
        ("retrieval", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="EmbeddingCacheEntry")],
            database_operations=[],
        ),
    ]
