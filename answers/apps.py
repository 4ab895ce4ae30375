from django.apps import AppConfig

from retrieval.signals import index_changed


class AnswersConfig(AppConfig):
    name = "answers"
    verbose_name = "Answers and feedback"

    def ready(self) -> None:
        from answers import cache  # its models are loaded only once the registry is ready

        # Cached answers were composed from the index as it was: any change to it (documents, ACLs, deletions,
        # a rebuild) retires them all.
        index_changed.connect(cache.invalidate_on_index_change, dispatch_uid="citewise.answers.index-changed")
