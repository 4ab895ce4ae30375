"""Local HTTP stand-ins for the services Citewise calls, so tests never leave 127.0.0.1.

All of them are base.StandInServer (start/stop, a log of every request, scripted replies and faults), each speaking
one service's documented wire format: slack (Slack Web API), teams (Bot Framework identity and the Teams Bot
Connector), cohere (Cohere v2 chat and rerank), openai (OpenAI chat completions), confluence (Confluence Cloud
REST), graph (Entra tokens, Microsoft Graph files, permissions and groups, and the SharePoint site-group REST call).
"""
