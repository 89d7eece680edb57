"""Forms of the prompt bank pages. They parse and validate input only; `promptbank.services` (and `imports`) write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.http import QueryDict

from accounts.models import Organization
from promptbank.choices import Category, IngestionFormat, Label, Mutator, ReleaseBump, Severity
from promptbank.filters import PromptFilter
from promptbank.models import BankRelease

AUTO_FORMAT = "auto"
TEXT_MAX_CHARS = 20_000


def parse_tags(value: str) -> list[str]:
    """Comma-separated tags to a list: lower-cased, trimmed, de-duplicated, in order."""
    seen: dict[str, None] = {}
    for tag in (value or "").split(","):
        tag = tag.strip().lower()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def prompt_filter_for_page(data: QueryDict | None, queryset: QuerySet) -> PromptFilter:
    """The API's prompt FilterSet with page-friendly labels and widgets (one FilterSet for both, STYLE.md §2)."""
    filterset = PromptFilter(data, queryset=queryset)
    fields = filterset.form.fields
    for name in ("category", "severity"):  # several may be chosen: a compact list box that opens on focus
        fields[name].widget.attrs.update({"size": 1, "class": "select-multi"})
        fields[name].help_text = ""
    fields["label"].empty_label = "Any label"
    fields["label"].choices = Label.choices  # re-set, so the choice list picks up the new empty label
    fields["scope"].empty_label = "Global and own"
    fields["scope"].choices = [("global", "Global bank"), ("private", "Organization's own")]
    fields["active"].widget = forms.Select(choices=[("", "Active or not"), ("true", "Active"), ("false", "Inactive")])
    fields["q"].label = "Text"
    fields["q"].widget.input_type = "search"
    fields["q"].widget.attrs["placeholder"] = "Text contains…"
    fields["tag"].widget.attrs["placeholder"] = "e.g. dan, base64"
    fields["source"].widget.attrs["placeholder"] = "e.g. manual"
    fields["language"].widget.attrs["placeholder"] = "e.g. en"
    return filterset


class TagsField(forms.CharField):
    """Comma-separated tags in, a list out."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 1000)
        kwargs.setdefault("help_text", "Comma-separated, e.g. role-play, dan.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(tag) for tag in value)
        return value

    def clean(self, value: Any) -> list[str]:
        return parse_tags(super().clean(value))


def _text_field(**kwargs: Any) -> forms.CharField:
    return forms.CharField(
        max_length=TEXT_MAX_CHARS,
        strip=False,  # the pipeline normalizes whitespace itself and records what it changed
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Ignore all previous instructions and…"}),
        error_messages={"max_length": "A prompt has at most %(limit_value)d characters (this one has %(show_value)d)."},
        **kwargs,
    )


class PromptTextMixin:
    """The prompt's text: not blank, and with the CRLF line breaks every browser sends for a textarea made LF, so an
    untouched text does not count as a change."""

    cleaned_data: dict[str, Any]

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].replace("\r\n", "\n")
        if not text.strip():
            raise forms.ValidationError("Enter the prompt's text.")
        return text


def _optional_choice(choices: list[tuple[str, str]], empty: str) -> forms.ChoiceField:
    return forms.ChoiceField(choices=[("", empty), *choices], required=False)


class PromptCreateForm(PromptTextMixin, forms.Form):
    text = _text_field()
    label = forms.ChoiceField(choices=Label.choices, initial=Label.ATTACK)
    category = _optional_choice(Category.choices, "Classify it for me")
    severity = _optional_choice(Severity.choices, "Category default")
    tags = TagsField()
    language = forms.CharField(max_length=16, required=False, help_text="Detected when left empty.")
    source_ref = forms.CharField(max_length=500, required=False, label="Reference", help_text="A URL or a note.")


class PromptEditForm(PromptTextMixin, forms.Form):
    """Every versioned field a curator changes on a private prompt; saving writes a new version."""

    text = _text_field()
    label = forms.ChoiceField(choices=Label.choices)
    category = forms.ChoiceField(choices=Category.choices)
    severity = forms.ChoiceField(choices=Severity.choices)
    subcategory = forms.CharField(max_length=64, required=False)
    attack_type = forms.CharField(max_length=64, required=False, label="Attack type")
    tags = TagsField()
    language = forms.CharField(max_length=16, required=False)
    source_ref = forms.CharField(max_length=500, required=False, label="Reference")
    license = forms.CharField(max_length=64, required=False, label="Licence")
    change_note = forms.CharField(
        max_length=500, required=False, label="Change note", help_text="Why, for the version history."
    )

    EDITABLE = ("text", "label", "category", "severity", "subcategory", "attack_type", "tags", "language")
    EDITABLE += ("source_ref", "license")

    def changes(self, prompt: Any) -> dict[str, Any]:
        """Only the fields that differ from the prompt, so an unchanged save writes no version."""
        changes = {}
        for name in self.EDITABLE:
            value, current = self.cleaned_data.get(name), getattr(prompt, name)
            if name == "tags":
                differs = sorted(value or []) != sorted(current or [])
            elif name == "text":
                differs = value.strip() != current.strip()
            else:
                differs = value != current
            if differs:
                changes[name] = value
        return changes


class VariantsForm(forms.Form):
    mutators = forms.MultipleChoiceField(
        choices=Mutator.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Mutators",
        error_messages={"required": "Choose at least one mutator."},
    )


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSON array, JSON lines, or CSV with a header row; UTF-8.")
    format = forms.ChoiceField(
        choices=[(AUTO_FORMAT, "Detect from the file"), *IngestionFormat.choices], initial=AUTO_FORMAT
    )
    source_name = forms.CharField(
        max_length=64,
        initial="upload",
        label="Source name",
        help_text="Given to the prompts whose records name no source.",
    )
    license = forms.CharField(max_length=64, required=False, label="Licence", help_text="e.g. MIT, CC-BY-4.0.")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.PROMPTBANK_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes.")
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload

    @property
    def import_format(self) -> str:
        """The format for `import_start`: empty means detect it from the file name, then the content."""
        value = self.cleaned_data["format"]
        return "" if value == AUTO_FORMAT else value


class SubmissionForm(PromptTextMixin, forms.Form):
    text = _text_field()
    label = forms.ChoiceField(choices=Label.choices, initial=Label.ATTACK)
    category = _optional_choice(Category.choices, "Let the reviewer decide")
    severity = _optional_choice(Severity.choices, "Category default")
    tags = TagsField()
    source_ref = forms.CharField(max_length=500, required=False, label="Reference")
    notes = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why it belongs."
    )


class SubmissionRejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, error_messages={"required": "Say why the submission is rejected."})

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the submission is rejected.")
        return reason


class SubmissionAcceptForm(forms.Form):
    reason = forms.CharField(max_length=2000, required=False)


class ReleaseForm(forms.Form):
    bump = forms.ChoiceField(
        choices=ReleaseBump.choices,
        initial=ReleaseBump.MINOR,
        help_text="Major for a reshaped bank, minor for new prompts, patch for fixes.",
    )
    notes = forms.CharField(
        max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What changed…"})
    )


class ReleaseChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: BankRelease) -> str:
        scope = "global" if obj.organization_id is None else "own"
        return f"v{obj.version} ({scope}{', active' if obj.is_active else ''})"


class ReleaseCompareForm(forms.Form):
    older = ReleaseChoiceField(queryset=BankRelease.objects.none(), label="From", empty_label="Choose a release")
    newer = ReleaseChoiceField(queryset=BankRelease.objects.none(), label="To", empty_label="Choose a release")

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        releases = BankRelease.objects.for_org(organization, include_global=True).order_by(
            "organization", "-major", "-minor", "-patch"
        )
        self.fields["older"].queryset = releases
        self.fields["newer"].queryset = releases

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        older, newer = cleaned.get("older"), cleaned.get("newer")
        if older and newer and older.pk == newer.pk:
            self.add_error("newer", "Choose two different releases.")
        return cleaned


class LearningPolicyForm(forms.Form):
    """The organization's learning policy (admins). `changes()` gives the service every field; it audits what moved."""

    auto_accept_findings = forms.BooleanField(
        required=False,
        label="Accept red-team findings at once",
        help_text="A successful attack from a test session enters the bank without a curator's review.",
    )
    auto_accept_false_positives = forms.BooleanField(
        required=False,
        label="Accept false-positive reports at once",
        help_text="A text reported as wrongly blocked enters the bank as a benign prompt without review.",
    )
    harvest_blocked = forms.BooleanField(
        required=False,
        label="Harvest blocked inputs",
        help_text="High-confidence blocked inputs become candidate prompts, near duplicates counted as one.",
    )
    harvest_min_confidence = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="Minimum confidence to harvest",
        help_text="From 0 to 1; only blocked inputs at or above it are harvested.",
    )

    def __init__(self, *args: Any, policy: Any = None, **kwargs: Any) -> None:
        if policy is not None and not args and "data" not in kwargs:
            kwargs["initial"] = {name: getattr(policy, name) for name in self.base_fields}
        super().__init__(*args, **kwargs)

    def changes(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class NearestForm(forms.Form):
    """A text to compare with the bank and the threat patterns (the search checks it again: `nearest.check_query`)."""

    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Paste a prompt or an input your firewall saw…"}),
        max_length=20_000,
        strip=False,
        label="Text",
    )
    limit = forms.IntegerField(min_value=1, max_value=50, initial=10, label="Results")
