"""Forms of the red-team testing pages. They parse input only; `testing.services` validates the rules (kinds, URLs,
templates, bank filters, ranges) and its errors are put back on these forms (`service_error`), so the pages and the
API answer with the same messages."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import QueryDict

from evalence.crypto import mask
from evalence.errors import ApplicationError
from firewall.models import DetectorModel
from promptbank.choices import ATTACK_CATEGORIES, Category, Mutator, Severity
from promptbank.mutators import MUTATORS
from promptbank.selectors import visible_releases
from testing import selectors
from testing.choices import ResultKind, TargetKind, Verdict
from testing.filters import ORIGINAL_MUTATOR, ResultFilter, SessionFilter
from testing.models import Target, TestSession, TestSuite

METHODS = [("POST", "POST"), ("PUT", "PUT"), ("PATCH", "PATCH"), ("GET", "GET")]
OVERRIDE_VERDICTS = [
    (value, label)
    for value, label in Verdict.choices
    if value in (Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED, Verdict.UNSCORABLE)
]
# Which target fields matter for which kind: the page hides the others (the server ignores nothing, it validates all).
KIND_FIELDS = {
    "base_url": (TargetKind.OPENAI_CHAT, TargetKind.HTTP_JSON),
    "model": (TargetKind.OPENAI_CHAT,),
    "api_key": (TargetKind.OPENAI_CHAT, TargetKind.HTTP_JSON),
    "clear_api_key": (TargetKind.OPENAI_CHAT, TargetKind.HTTP_JSON),
    "extra_params": (TargetKind.OPENAI_CHAT,),
    "method": (TargetKind.HTTP_JSON,),
    "headers": (TargetKind.HTTP_JSON,),
    "clear_headers": (TargetKind.HTTP_JSON,),
    "body_template": (TargetKind.HTTP_JSON,),
    "response_path": (TargetKind.HTTP_JSON,),
}
# The recent sessions a compare page offers in its lists (any of the organization's sessions is accepted).
COMPARE_CHOICES = 200


def service_error(form: forms.Form, error: ValidationError | ApplicationError) -> None:
    """Put a service's error on the form: on each field it names that the form has, the rest on top (named), so no
    message is lost. Takes Django's ValidationError (the testing services) and ApplicationError (the bank's)."""
    if isinstance(error, ApplicationError):
        problems = error.fields or {}
        if not problems:
            form.add_error(None, error.message)
            return
    elif hasattr(error, "error_dict"):
        problems = error.message_dict
    else:
        for message in error.messages:
            form.add_error(None, message)
        return
    for name, texts in problems.items():
        for text in texts if isinstance(texts, list | tuple) else [texts]:
            if name in form.fields:
                form.add_error(name, str(text))
            elif name == "__all__":
                form.add_error(None, str(text))
            else:
                form.add_error(None, f"{name.replace('_', ' ').capitalize()}: {text}")


def _words(value: str) -> list[str]:
    """A comma-separated field as a clean list (blank entries and repeats dropped, order kept)."""
    seen: list[str] = []
    for part in (value or "").split(","):
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return seen


def _json_object(value: str, what: str) -> dict[str, Any]:
    value = (value or "").strip()
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"{what} must be a JSON object: {exc.msg} (line {exc.lineno}).") from None
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f'{what} must be a JSON object, like {{"temperature": 0}}.')
    return parsed


# --- targets ------------------------------------------------------------------------------------------------------


class TargetForm(forms.Form):
    """Every field of a target. The API key and the headers are write-only: blank keeps what is stored, a tick
    clears it, and the page shows only a masked hint (the key's last four characters) and the header names."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=TargetKind.choices, initial=TargetKind.OPENAI_CHAT)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    base_url = forms.CharField(
        required=False,
        max_length=500,
        label="URL",
        help_text="OpenAI-compatible: the API root (…/v1). HTTP JSON: the full URL.",
        widget=forms.TextInput(attrs={"placeholder": "https://api.example.com/v1", "spellcheck": "false"}),
    )
    model = forms.CharField(required=False, max_length=200)
    api_key = forms.CharField(
        required=False,
        max_length=2000,
        label="API key",
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted, never shown again.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")
    method = forms.ChoiceField(choices=METHODS, initial="POST")
    headers = forms.CharField(
        required=False,
        label="Extra headers",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"X-Api-Token": "…"}', "spellcheck": "false"}),
        help_text="A JSON object of strings; stored encrypted, never shown again.",
    )
    clear_headers = forms.BooleanField(required=False, label="Remove the stored headers")
    body_template = forms.CharField(
        required=False,
        strip=False,
        label="Body template",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"message": "{{prompt}}"}', "spellcheck": "false"}),
        help_text="JSON with a {{prompt}} slot.",
    )
    response_path = forms.CharField(required=False, max_length=200, label="Response path", help_text="e.g. data.reply")
    extra_params = forms.CharField(
        required=False,
        label="Extra request parameters",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"temperature": 0}', "spellcheck": "false"}),
        help_text="A JSON object merged into each chat request's body.",
    )
    system_prompt = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}))
    canary = forms.CharField(required=False, max_length=100, help_text="A token planted in the system prompt.")
    timeout_s = forms.FloatField(label="Timeout (s)", initial=30.0)
    concurrency = forms.IntegerField(initial=4, help_text="Requests in flight at once.")
    requests_per_minute = forms.IntegerField(label="Requests per minute", initial=0, help_text="0: no limit.")
    max_retries = forms.IntegerField(label="Retries", initial=3, help_text="On 429, 5xx and timeouts.")
    is_active = forms.BooleanField(required=False, initial=True, label="Active", help_text="Off: no new sessions.")

    def __init__(self, *args: Any, target: Target | None = None, **kwargs: Any) -> None:
        if target is not None and "initial" not in kwargs:
            initial = {
                name: getattr(target, name)
                for name in (
                    "name",
                    "kind",
                    "description",
                    "base_url",
                    "model",
                    "method",
                    "body_template",
                    "response_path",
                    "system_prompt",
                    "canary",
                    "timeout_s",
                    "concurrency",
                    "requests_per_minute",
                    "max_retries",
                    "is_active",
                )
            }
            initial["extra_params"] = json.dumps(target.extra_params, indent=2) if target.extra_params else ""
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.target = target
        self.api_key_hint = mask(target.api_key) if target is not None and target.api_key else ""
        self.header_names = _header_names(target.headers) if target is not None else []
        if self.api_key_hint:
            self.fields["api_key"].widget.attrs["placeholder"] = f"{self.api_key_hint} (set; blank keeps it)"
        else:
            del self.fields["clear_api_key"]
        if self.header_names:
            self.fields["headers"].widget.attrs["placeholder"] = "(set; blank keeps them)"
        else:
            del self.fields["clear_headers"]
        for name, field in self.fields.items():
            kinds = KIND_FIELDS.get(name)
            if kinds:
                field.widget.attrs["data-kinds"] = " ".join(kinds)

    def clean_extra_params(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["extra_params"], "Extra request parameters")

    def clean_headers(self) -> str:
        value = self.cleaned_data["headers"].strip()
        if value:
            _json_object(value, "Extra headers")
        return value

    def fields_for_service(self) -> dict[str, Any]:
        """The target's fields as `services.target_create/update` take them: secrets only when typed in."""
        data = self.cleaned_data
        fields = {
            name: data[name]
            for name in (
                "name",
                "kind",
                "description",
                "base_url",
                "model",
                "method",
                "body_template",
                "response_path",
                "extra_params",
                "system_prompt",
                "canary",
                "timeout_s",
                "concurrency",
                "requests_per_minute",
                "max_retries",
                "is_active",
            )
        }
        fields["name"] = fields["name"].strip()
        fields["base_url"] = fields["base_url"].strip()
        fields["model"] = fields["model"].strip()
        fields["system_prompt"] = fields["system_prompt"].replace("\r\n", "\n")
        fields["body_template"] = fields["body_template"].replace("\r\n", "\n")
        if data["api_key"]:
            fields["api_key"] = data["api_key"]
        if data["headers"]:
            fields["headers"] = data["headers"]
        return fields

    def secrets_to_clear(self) -> list[str]:
        return [name for name in ("api_key", "headers") if self.cleaned_data.get(f"clear_{name}")]


def _header_names(headers: str) -> list[str]:
    try:
        parsed = json.loads(headers) if headers else {}
    except (TypeError, ValueError):
        return []
    return sorted(parsed) if isinstance(parsed, dict) else []


# --- suites -------------------------------------------------------------------------------------------------------


class SuiteForm(forms.Form):
    """A saved selection from the bank, with the mutators and generations applied at run time."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    categories = forms.MultipleChoiceField(
        required=False,
        choices=[(value, Category(value).label) for value in ATTACK_CATEGORIES],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every attack category.",
    )
    severities = forms.MultipleChoiceField(
        required=False,
        choices=Severity.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every severity.",
    )
    mutators = forms.MultipleChoiceField(
        required=False,
        choices=[(name, Mutator(name).label) for name in MUTATORS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Each makes a variant of every prompt at run time.",
    )
    include_original = forms.BooleanField(
        required=False, initial=True, label="Send the original prompts too", help_text="Untick to send variants only."
    )
    tags = forms.CharField(required=False, help_text="Comma-separated; a prompt needs every tag.")
    sources = forms.CharField(required=False, help_text="Comma-separated; any of them.")
    language = forms.CharField(required=False, max_length=16, help_text="e.g. en; blank: any.")
    release = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="The live bank",
        label="Bank release",
        help_text="Pin the suite to a release's exact prompt versions.",
    )
    max_prompts = forms.IntegerField(label="Maximum prompts", initial=50)
    random_seed = forms.IntegerField(label="Random seed", initial=0, help_text="Picks the same sample every time.")
    generations = forms.IntegerField(initial=1, help_text="Times each prompt is sent.")
    baseline_prompts = forms.IntegerField(
        label="Baseline prompts", initial=10, help_text="Benign control prompts, for the no-attack baseline."
    )
    llm_judge = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="No LLM judge",
        label="LLM judge",
        help_text="An OpenAI-compatible model that judges the responses too.",
    )

    def __init__(self, *args: Any, organization: Any, suite: TestSuite | None = None, **kwargs: Any) -> None:
        if suite is not None and "initial" not in kwargs:
            initial = {
                name: getattr(suite, name)
                for name in (
                    "name",
                    "description",
                    "categories",
                    "severities",
                    "mutators",
                    "include_original",
                    "language",
                    "max_prompts",
                    "random_seed",
                    "generations",
                    "baseline_prompts",
                )
            }
            initial["tags"] = ", ".join(suite.tags)
            initial["sources"] = ", ".join(suite.sources)
            initial["release"] = suite.release_id
            initial["llm_judge"] = suite.llm_judge_id
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.fields["release"].queryset = visible_releases(organization).order_by(
            "organization", "-major", "-minor", "-patch"
        )
        self.fields["release"].label_from_instance = _release_label
        self.fields["llm_judge"].queryset = DetectorModel.objects.for_org(organization).filter(is_active=True)

    def fields_for_service(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {
            name: data[name]
            for name in (
                "description",
                "categories",
                "severities",
                "mutators",
                "include_original",
                "release",
                "max_prompts",
                "random_seed",
                "generations",
                "baseline_prompts",
                "llm_judge",
            )
        }
        fields["name"] = data["name"].strip()
        fields["tags"] = [tag.lower() for tag in _words(data["tags"])]
        fields["sources"] = _words(data["sources"])
        fields["language"] = data["language"].strip()
        return fields


def _release_label(release: Any) -> str:
    scope = "global" if release.organization_id is None else "own"
    active = ", active" if release.is_active else ""
    return f"v{release.version} ({scope}{active})"


# --- sessions -----------------------------------------------------------------------------------------------------


class SessionStartForm(forms.Form):
    """The quick "new session" form: a target and a suite of the organization."""

    target = forms.ModelChoiceField(queryset=None, empty_label="Choose a target")
    suite = forms.ModelChoiceField(queryset=None, empty_label="Choose a suite")
    name = forms.CharField(required=False, max_length=200, help_text="Blank: “suite → target”.")

    def __init__(self, *args: Any, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = selectors.targets_for(organization).filter(is_active=True)
        self.fields["target"].label_from_instance = lambda target: str(target)
        self.fields["suite"].queryset = selectors.suites_for(organization)


class OverrideForm(forms.Form):
    verdict = forms.ChoiceField(
        choices=OVERRIDE_VERDICTS, widget=forms.RadioSelect, error_messages={"required": "Pick the verdict."}
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept with the result and in the audit log.",
        error_messages={"required": "Say why the verdict changes."},
    )


class CompareForm(forms.Form):
    """Two sessions of the organization (GET). Foreign or unknown ids are invalid choices, never looked up."""

    base = forms.ModelChoiceField(queryset=None, label="Base session", empty_label="Choose the earlier run")
    head = forms.ModelChoiceField(queryset=None, label="Head session", empty_label="Choose the later run")

    def __init__(self, *args: Any, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sessions = selectors.sessions_for(organization)
        recent = list(sessions.order_by("-created_at")[:COMPARE_CHOICES])
        chosen = {str(self.data.get(name, "")) for name in ("base", "head")} if self.is_bound else set()
        listed = {str(s.pk) for s in recent}
        extra = list(sessions.filter(pk__in=_uuids(chosen - listed))) if chosen - listed else []
        options = [(str(s.pk), _session_label(s)) for s in [*recent, *extra]]
        for name in ("base", "head"):
            field = self.fields[name]
            field.queryset = sessions
            # Validation accepts any of the organization's sessions; the list offers the recent ones.
            field.widget.choices = [("", field.empty_label), *options]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("base") and data.get("head") and data["base"].pk == data["head"].pk:
            self.add_error("head", "Choose two different sessions.")
        return data


def _uuids(values: set[str]) -> list[str]:
    import uuid

    found = []
    for value in values:
        try:
            found.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return found


def _session_label(session: TestSession) -> str:
    return f"{session} · {session.get_status_display()} · {session.created_at:%Y-%m-%d %H:%M}"


# --- filters ------------------------------------------------------------------------------------------------------


def session_filter_for_page(data: QueryDict | None, queryset: QuerySet, organization: Any) -> SessionFilter:
    """The API's session FilterSet with page widgets: the status as a compact list, the target as a select."""
    filterset = SessionFilter(data, queryset=queryset)
    fields = filterset.form.fields
    fields["status"].widget.attrs.update({"size": 1, "class": "select-multi"})
    fields["status"].help_text = ""
    targets = selectors.targets_for(organization).only("id", "name")
    fields["target"].widget = forms.Select(choices=[("", "Any target"), *((str(t.pk), t.name) for t in targets)])
    return filterset


def result_filter_for_page(data: QueryDict | None, queryset: QuerySet, mutators: list[str]) -> ResultFilter:
    """The API's result FilterSet with page widgets; the mutator list holds the session's own mutators."""
    filterset = ResultFilter(data, queryset=queryset)
    fields = filterset.form.fields
    for name in ("verdict", "category"):
        fields[name].widget.attrs.update({"size": 1, "class": "select-multi"})
        fields[name].help_text = ""
    fields["kind"].empty_label = "Attacks and baseline"
    fields["kind"].choices = ResultKind.choices
    labels = dict(Mutator.choices)
    fields["mutator"].widget = forms.Select(
        choices=[
            ("", "Any mutator"),
            (ORIGINAL_MUTATOR, "Original (no mutator)"),
            *((m, labels.get(m, m)) for m in mutators if m),
        ]
    )
    fields["q"].label = "Text"
    fields["q"].widget.attrs["placeholder"] = "In the prompt sent or the response"
    return filterset
