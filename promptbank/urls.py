from django.urls import path

from promptbank import views

app_name = "promptbank"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
]
