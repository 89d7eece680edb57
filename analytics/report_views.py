"""The organization report's pages: the report itself (every member; `?format=html|csv` downloads it) and its
e-mail schedule (every member reads it, admins change it).

Tenancy and roles come from `OrgPageMixin`; the figures from `analytics.reports`, the same code the scheduled
e-mail uses, so what a member downloads is what the recipients receive.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.generic import TemplateView

from accounts.choices import Role
from analytics import reports
from analytics.forms_report import ReportRangeForm, ReportScheduleForm
from evalence.http import client_ip
from evalence.views import OrgPageMixin
from firewall.forms import service_error

DOWNLOADS = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8"}


class ReportView(OrgPageMixin, TemplateView):
    """The report for the chosen period, printable as it stands; an invalid period or format is a 400."""

    template_name = "analytics/report.html"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = ReportRangeForm(request.GET)
        fmt = request.GET.get("format", "")
        if fmt and fmt not in DOWNLOADS:
            form.add_error(None, f"Unknown format {fmt!r}: choose html or csv.")
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form, report=None), status=400)
        report = reports.build_report(self.organization, form.period())
        if fmt:
            body = reports.render_html(report) if fmt == "html" else reports.render_csv(report)
            response = HttpResponse(body, content_type=DOWNLOADS[fmt])
            response["Content-Disposition"] = f'attachment; filename="{report.filename_stem}.{fmt}"'
            return response
        context = self.get_context_data(form=form, **reports.report_context(report))
        return self.render_to_response(context)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        report_url = reverse("analytics:report")
        query = self.request.GET.copy()
        query.pop("format", None)
        context.update(
            interactive=True,
            organization=self.organization,
            report_url=report_url,
            overview_url=reverse("analytics:overview"),
            schedule_url=reverse("analytics:report_schedule"),
            download_html_url=f"{report_url}?{_with(query, 'html')}",
            download_csv_url=f"{report_url}?{_with(query, 'csv')}",
        )
        return context


def _with(query: Any, fmt: str) -> str:
    query = query.copy()
    query["format"] = fmt
    return query.urlencode()


class ReportScheduleView(OrgPageMixin, TemplateView):
    """The schedule for every member to read; admins change it (`reports.report_schedule_update`, audited)."""

    template_name = "analytics/report_schedule.html"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        schedule = reports.schedule_for(self.organization)
        can_admin = self.membership.has_role(Role.ADMIN)
        context.update(
            nav_active="analytics",
            organization=self.organization,
            schedule=schedule,
            recipients=[line for line in schedule.recipients.splitlines() if line],
            can_admin=can_admin,
            next_send=reports.next_send(schedule),
            latest_period=reports.scheduled_period(schedule.frequency, timezone.now()),
            report_url=reverse("analytics:report"),
        )
        if can_admin:
            context["form"] = kwargs.get("form") or ReportScheduleForm(
                initial={
                    "enabled": schedule.enabled,
                    "frequency": schedule.frequency,
                    "recipients": schedule.recipients,
                }
            )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = ReportScheduleForm(request.POST)
        if form.is_valid():
            try:
                reports.report_schedule_update(
                    organization=self.organization,
                    actor=request.user,
                    enabled=form.cleaned_data["enabled"],
                    frequency=form.cleaned_data["frequency"],
                    recipients=form.cleaned_data["recipients"],
                    ip=client_ip(request),
                )
            except reports.ReportInputError as exc:
                service_error(form, exc)
            else:
                messages.success(request, "Report schedule saved.")
                return redirect("analytics:report_schedule")
        return self.render_to_response(self.get_context_data(form=form), status=400)
