"""The review queue holds thumbs-down as well as flags: its names say so."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('console', '0003_flaggedanswer_of_answers_feedback'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='flaggedanswer',
            options={'verbose_name': 'review item', 'verbose_name_plural': 'review queue (flags and thumbs-down)'},
        ),
    ]
