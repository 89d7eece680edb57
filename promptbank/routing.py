from django.urls import path

from promptbank.consumers import IngestionRunConsumer

websocket_urlpatterns = [
    path("ws/promptbank/imports/<uuid:pk>/", IngestionRunConsumer.as_asgi(), name="ws-promptbank-import"),
]
