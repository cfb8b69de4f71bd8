from django.apps import AppConfig


class ChannelsInConfig(AppConfig):
    name = "channels_in"
    verbose_name = "Channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from channels_in import receivers  # noqa: F401  (connects the anymail signals)
        from channels_in import widget_views  # noqa: F401  (connects the widget's CORS check)
