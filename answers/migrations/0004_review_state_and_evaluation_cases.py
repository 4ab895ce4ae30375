"""The review queue's state on each piece of feedback (replacing the `reviewed` flag: what was reviewed is resolved),
and reviewers' corrected answers kept as evaluation cases."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def reviewed_to_resolved(apps, schema_editor):
    Feedback = apps.get_model("answers", "Feedback")
    Feedback.objects.using(schema_editor.connection.alias).filter(reviewed=True).update(review_status="resolved")


def resolved_to_reviewed(apps, schema_editor):
    Feedback = apps.get_model("answers", "Feedback")
    Feedback.objects.using(schema_editor.connection.alias).exclude(review_status="open").update(reviewed=True)


class Migration(migrations.Migration):

    dependencies = [
        ('answers', '0003_conversation_title_and_deletion'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='feedback',
            name='assignee',
            field=models.ForeignKey(blank=True, limit_choices_to={'is_staff': True}, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='assigned_reviews', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='feedback',
            name='resolution_note',
            field=models.TextField(blank=True, max_length=4000),
        ),
        migrations.AddField(
            model_name='feedback',
            name='resolved_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='feedback',
            name='resolved_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='feedback',
            name='review_status',
            field=models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved'), ('dismissed', 'Dismissed')], db_index=True, default='open', max_length=16),
        ),
        migrations.RunPython(reviewed_to_resolved, resolved_to_reviewed),
        migrations.RemoveField(
            model_name='feedback',
            name='reviewed',
        ),
        migrations.CreateModel(
            name='EvaluationCase',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('question', models.TextField()),
                ('asker_email', models.EmailField(help_text='who asks it in the evaluation: a person of the set with this email', max_length=254)),
                ('correct_answer', models.TextField(help_text='what the answer should have said')),
                ('must_contain', models.JSONField(default=list, help_text='facts a correct answer states')),
                ('expected_doc_ids', models.JSONField(default=list, help_text='documents it must cite, as the evaluation names them (their path without the extension)')),
                ('document_ids', models.JSONField(default=list, help_text="the same documents' Citewise ids")),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('source_feedback', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='evaluation_cases', to='answers.feedback')),
            ],
            options={
                'ordering': ['created_at'],
            },
        ),
    ]
