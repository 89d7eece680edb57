from evalence.api.routers import Router
from testing.api import views

router = Router()
router.register("targets", views.TargetViewSet, basename="target")
router.register("suites", views.SuiteViewSet, basename="suite")
router.register("sessions", views.SessionViewSet, basename="session")
router.register("results", views.ResultViewSet, basename="result")

urlpatterns = [*router.urls]
