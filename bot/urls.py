from django.urls import path

from bot.slack import views as slack_views

app_name = "bot"
urlpatterns = [
    path("slack/events", slack_views.events, name="slack-events"),
]
