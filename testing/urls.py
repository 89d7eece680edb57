from django.urls import path

from testing import views

app_name = "testing"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
]
