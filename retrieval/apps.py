from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "retrieval"
    verbose_name = "Retrieval"

    def ready(self) -> None:
        from retrieval import spelling
        from retrieval.signals import index_changed

        index_changed.connect(spelling.forget_on_index_change, dispatch_uid="citewise.retrieval.spelling")
