from django.urls import path

from firewall import views

app_name = "firewall"

urlpatterns = [
    path("", views.IndexView.as_view(), name="index"),
]
