from django.urls import path

from testing.consumers import SessionProgressConsumer

websocket_urlpatterns = [
    path("ws/testing/sessions/<uuid:pk>/", SessionProgressConsumer.as_asgi(), name="ws-testing-session"),
]
