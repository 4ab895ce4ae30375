"""Reviewers' ranking rules: boost, demote or hide a document everywhere or for one question."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('answers', '0004_review_state_and_evaluation_cases'),
        ('retrieval', '0002_table_renamed'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RankingRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('document_id', models.CharField(db_index=True, max_length=64)),
                ('effect', models.CharField(choices=[('boost', 'Boost'), ('demote', 'Demote'), ('hide', 'Hide')], max_length=8)),
                ('question_hash', models.CharField(blank=True, db_index=True, help_text='blank: every question; else retrieval.ranking.question_hash of the one question it applies to', max_length=64)),
                ('question', models.TextField(blank=True, help_text='the question as asked, for reviewers')),
                ('note', models.TextField(blank=True, max_length=4000)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('removed_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('removed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('source_feedback', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='ranking_rules', to='answers.feedback')),
            ],
            options={
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('removed_at', None)), fields=('document_id', 'question_hash'), name='one_active_ranking_rule_per_document_and_scope')],
            },
        ),
    ]
