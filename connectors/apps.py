from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Sources and documents"

    def ready(self) -> None:
        from connectors import signals  # noqa: F401 - connects the index-first delete receivers and index_found_empty's
