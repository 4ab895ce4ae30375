from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("bot", "0001_initial"),
        ("search", "0002_conversation_answer_feedback_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="slackchannelsettings", name="unique_slack_channel"),
        migrations.RenameModel(old_name="SlackChannelSettings", new_name="ChannelSettings"),
        migrations.AlterModelOptions(
            name="channelsettings",
            options={"verbose_name": "channel settings", "verbose_name_plural": "channel settings"},
        ),
        migrations.AddField(
            model_name="channelsettings",
            name="platform",
            field=models.CharField(choices=[("slack", "Slack"), ("teams", "Microsoft Teams")], default="slack",
                                   max_length=16),
        ),
        migrations.AlterField(
            model_name="channelsettings",
            name="team_id",
            field=models.CharField(help_text="Slack workspace id, or the Teams team id", max_length=64),
        ),
        migrations.AlterField(
            model_name="channelsettings",
            name="channel_id",
            field=models.CharField(help_text="Slack channel id (C…), or the Teams channel id (19:…)", max_length=255),
        ),
        migrations.AlterField(
            model_name="channelsettings",
            name="visibility",
            field=models.CharField(choices=[("ephemeral", "Privately to the asker, with their permissions"),
                                            ("channel_safe", "Everyone sees it, from documents every member can read")],
                                   default="ephemeral", max_length=16),
        ),
        migrations.AddConstraint(
            model_name="channelsettings",
            constraint=models.UniqueConstraint(fields=("platform", "team_id", "channel_id"),
                                               name="unique_channel_per_platform"),
        ),
        migrations.AlterField(
            model_name="threadconversation", name="channel_id", field=models.CharField(max_length=255),
        ),
        migrations.AlterField(
            model_name="threadconversation", name="thread_id", field=models.CharField(max_length=255),
        ),
        migrations.AddField(
            model_name="threadconversation", name="last_used_at", field=models.DateTimeField(auto_now=True),
        ),
    ]
