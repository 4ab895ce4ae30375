from django.urls import path

from bot.slack import views as slack_views
from bot.teams import views as teams_views

app_name = "bot"
urlpatterns = [
    path("slack/events", slack_views.events, name="slack-events"),
    path("api/teams/messages", teams_views.messages, name="teams-messages"),
]
