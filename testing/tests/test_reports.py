"""Session exports: each format parses, carries the right rows and figures, and defuses hostile text."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from django.utils import timezone

from testing.choices import ResultKind, Verdict
from testing.reports import CONTENT_TYPES, CSV_COLUMNS, EXPORT_FORMATS, export_session, iter_csv
from testing.stats import session_summary
from testing.tests import factories

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own export, parsed to prove it is well-formed


def add(session: Any, verdict: str, **fields: Any) -> Any:
    fields.setdefault("judge_verdict", verdict)
    return factories.TestResultFactory(organization=session.organization, session=session, verdict=verdict, **fields)


@pytest.fixture
def session(org_a: Any, alice: Any) -> Any:
    session = factories.TestSessionFactory(
        organization=org_a,
        name="Nightly run",
        config={"target": {"name": "Support bot", "kind": "openai_chat", "model": "gpt-x"}, "suite": {"name": "Smoke"}},
    )
    add(session, Verdict.SUCCEEDED, item_key="p1::0", severity="critical", prompt_text=HOSTILE, response=HOSTILE)
    add(
        session,
        Verdict.SUCCEEDED,
        item_key="p2:base64:0",
        mutator="base64",
        severity="medium",
        category="jailbreak",
        response='=HYPERLINK("http://evil.test","click")\nline two, with a comma',
        reason="Persona marker found.",
        latency_ms=120.0,
    )
    add(session, Verdict.SUCCEEDED, item_key="p3::0", severity="low", category="jailbreak", prompt_text="+1 plus")
    add(session, Verdict.RESISTED, item_key="p4::0", severity="high", prompt_text="-2 minus", response="@SUM(A1)")
    add(session, Verdict.BLOCKED, item_key="p5::0", prompt_text="\tTabbed", response="\rCarriage")
    add(session, Verdict.ERROR, item_key="p6::0", response="", error="HTTP 503 from target\x0b\x1b[0m", reason="")
    add(session, Verdict.UNSCORABLE, item_key="p7::0", reason="Empty answer.")
    overridden = add(session, Verdict.RESISTED, item_key="p8::0", category="jailbreak")
    overridden.judge_verdict = Verdict.SUCCEEDED
    overridden.overridden_by = alice
    overridden.overridden_at = timezone.now()
    overridden.override_reason = "The model only quoted the attack."
    overridden.save()
    add(session, Verdict.RESISTED, item_key="b1", kind=ResultKind.BASELINE, category="benign", severity="low")
    return session


# --- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_result_with_the_agreed_columns(session: Any) -> None:
    body, content_type, filename = export_session(session, "csv")
    assert content_type == CONTENT_TYPES["csv"] == "text/csv; charset=utf-8"
    assert filename.startswith("evalence-nightly-run-") and filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 9
    by_key = {row["item_key"]: row for row in rows}
    assert by_key["b1"]["kind"] == "baseline"
    assert by_key["p8::0"]["verdict"] == "resisted" and by_key["p8::0"]["judge_verdict"] == "succeeded"
    assert by_key["p8::0"]["overridden"] == "true" and by_key["p1::0"]["overridden"] == "false"
    assert by_key["p2:base64:0"]["latency_ms"] == "120.0" and by_key["p1::0"]["latency_ms"] == ""
    assert by_key["p2:base64:0"]["generation"] == "0"


def test_csv_defuses_formulas_but_keeps_ordinary_text(session: Any) -> None:
    rows = {row["item_key"]: row for row in csv.DictReader(iter_csv(session))}
    assert rows["p2:base64:0"]["response"] == '\'=HYPERLINK("http://evil.test","click")\nline two, with a comma'
    assert rows["p3::0"]["prompt_text"] == "'+1 plus"
    assert rows["p4::0"]["prompt_text"] == "'-2 minus"
    assert rows["p4::0"]["response"] == "'@SUM(A1)"
    assert rows["p5::0"]["prompt_text"] == "'\tTabbed"
    assert rows["p5::0"]["response"] == "'\rCarriage"
    assert rows["p1::0"]["prompt_text"] == HOSTILE  # not a formula: left as it is
    assert rows["p2:base64:0"]["reason"] == "Persona marker found."


def test_iter_csv_streams_header_then_one_line_per_result(session: Any) -> None:
    lines = iter_csv(session)
    assert next(lines).rstrip("\r\n") == ",".join(CSV_COLUMNS)
    assert len(list(lines)) == 9


# --- JSON --------------------------------------------------------------------------------------------------------


def test_json_holds_the_session_its_summary_and_every_result(session: Any) -> None:
    body, content_type, filename = export_session(session, "json")
    assert content_type == "application/json" and filename.endswith(".json")
    document = json.loads(body)
    assert document["session"]["id"] == str(session.pk)
    assert document["session"]["target"] == "Support bot" and document["session"]["suite"] == "Smoke"
    assert document["summary"] == json.loads(json.dumps(session_summary(session)))
    assert document["summary"]["attack_success_rate"] == 0.5  # 3 of 6 scored attacks
    assert len(document["results"]) == 9
    by_key = {row["item_key"]: row for row in document["results"]}
    assert by_key["p1::0"]["prompt_text"] == HOSTILE
    assert by_key["p8::0"]["overridden"] is True
    assert by_key["p8::0"]["override_reason"] == "The model only quoted the attack."
    assert by_key["p1::0"]["overridden"] is False


# --- JUnit -------------------------------------------------------------------------------------------------------


def test_junit_has_a_suite_per_category_and_a_case_per_attack(session: Any) -> None:
    body, content_type, filename = export_session(session, "junit")
    assert content_type == "application/xml" and filename.endswith(".junit.xml")
    root = parse_xml(body)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("8", "3", "1", "1")
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"prompt_injection", "jailbreak"}  # the baseline is no test case
    jailbreak = suites["jailbreak"]
    assert (jailbreak.get("tests"), jailbreak.get("failures")) == ("3", "2")
    cases = {case.get("name"): case for suite in suites.values() for case in suite.findall("testcase")}
    assert len(cases) == 8
    failure = cases["p2:base64:0"].find("failure")
    assert failure is not None and failure.get("message") == "Persona marker found."
    assert cases["p2:base64:0"].get("time") == "0.120"
    assert cases["p2:base64:0"].get("classname") == "evalence.jailbreak"
    error = cases["p6::0"].find("error")
    assert error is not None and error.get("message").startswith("HTTP 503 from target")
    assert "\x0b" not in error.get("message") and "\x1b" not in error.get("message")
    assert cases["p7::0"].find("skipped").get("message") == "Empty answer."
    assert list(cases["p4::0"]) == [] and list(cases["p5::0"]) == [] and list(cases["p8::0"]) == []  # passed


def test_junit_survives_hostile_markup_in_reasons(org_a: Any) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    add(session, Verdict.SUCCEEDED, reason=HOSTILE + ' & "quotes" \x07 ]]>')
    failure = parse_xml(export_session(session, "junit")[0]).find("testsuite/testcase/failure")
    assert failure.get("message") == HOSTILE + ' & "quotes" \ufffd ]]>'


# --- SARIF -------------------------------------------------------------------------------------------------------


def test_sarif_follows_the_2_1_0_shape(session: Any) -> None:
    body, content_type, filename = export_session(session, "sarif")
    assert content_type == "application/sarif+json" and filename.endswith(".sarif")
    sarif = json.loads(body)
    assert sarif["$schema"].endswith("sarif-schema-2.1.0.json")
    assert sarif["version"] == "2.1.0"
    assert len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "Evalence"
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == ["jailbreak", "prompt_injection"]
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert "helpUri" not in rule
    assert rules[1]["shortDescription"]["text"] == "Prompt injection"

    results = run["results"]
    assert len(results) == 3  # succeeded attacks only; the override to resisted is no finding
    by_key = {result["properties"]["item_key"]: result for result in results}
    assert {key: result["level"] for key, result in by_key.items()} == {
        "p1::0": "error",  # critical
        "p2:base64:0": "warning",  # medium
        "p3::0": "note",  # low
    }
    finding = by_key["p2:base64:0"]
    assert finding["ruleId"] == "jailbreak"
    assert rules[finding["ruleIndex"]]["id"] == "jailbreak"
    assert "Support bot" in finding["message"]["text"]
    assert finding["locations"] == [{"logicalLocations": [{"name": "Support bot", "kind": "resource"}]}]
    properties = finding["properties"]
    assert properties["mutator"] == "base64"
    assert properties["prompt_text"].startswith("Ignore previous instructions")
    assert properties["response_excerpt"].startswith("=HYPERLINK")


def test_sarif_cuts_long_responses_to_an_excerpt(org_a: Any) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    add(session, Verdict.SUCCEEDED, response="z" * 5000)
    result = json.loads(export_session(session, "sarif")[0])["runs"][0]["results"][0]
    assert result["properties"]["response_excerpt"] == "z" * 500


# --- HTML --------------------------------------------------------------------------------------------------------


def test_html_report_is_self_contained_and_printable(session: Any) -> None:
    body, content_type, filename = export_session(session, "html")
    assert content_type == "text/html; charset=utf-8" and filename.endswith(".html")
    html = body.decode("utf-8")
    assert "<title>Red-team report · Nightly run · Evalence</title>" in html
    assert "Support bot" in html and "gpt-x" in html and "Smoke" in html
    assert "@media print" in html
    for external in ("<link", "<script", "@import", "url("):
        assert external not in html, external
    assert not re.search(r"<[a-z]+[^>]*\s(src|href)=", html)  # no tag loads anything


def test_html_escapes_hostile_text_from_the_target(session: Any) -> None:
    html = export_session(session, "html")[0].decode("utf-8")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in html


def test_html_shows_figures_findings_baseline_and_errors(session: Any) -> None:
    html = export_session(session, "html")[0].decode("utf-8")
    assert "50.0%" in html  # attack success rate, 3 of 6
    assert "Findings (3)" in html
    assert "Persona marker found." in html
    assert "HTTP 503 from target" in html  # the errors section
    assert "Errors (1)" in html
    assert "No-attack baseline" in html and "Control prompts" in html
    assert "set by an analyst" not in html  # the overridden item is resisted now, not a finding
    # Most severe first.
    assert html.index("sev-critical") < html.index("finding sev-medium") < html.index("finding sev-low")


def test_html_truncates_long_texts_with_a_note(org_a: Any) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    add(session, Verdict.SUCCEEDED, response="r" * 2500 + "TAIL")
    html = export_session(session, "html")[0].decode("utf-8")
    assert "r" * 2000 in html and "TAIL" not in html
    assert "Truncated to 2000 of 2504 characters" in html


def test_html_marks_an_analyst_override_to_succeeded(org_a: Any, alice: Any) -> None:
    session = factories.TestSessionFactory(organization=org_a)
    add(
        session,
        Verdict.SUCCEEDED,
        judge_verdict=Verdict.RESISTED,
        overridden_by=alice,
        overridden_at=timezone.now(),
        override_reason="It did leak the canary.",
    )
    html = export_session(session, "html")[0].decode("utf-8")
    assert "set by an analyst; the judges said resisted" in html
    assert "Override reason: It did leak the canary." in html


# --- formats -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_format_exports_an_empty_session(org_a: Any, fmt: str) -> None:
    body, content_type, filename = export_session(factories.TestSessionFactory(organization=org_a), fmt)
    assert body and content_type == CONTENT_TYPES[fmt] and filename.startswith("evalence-session-")


def test_an_unknown_format_is_a_clear_error(session: Any) -> None:
    with pytest.raises(ValueError, match="Unknown export format 'pdf': choose one of html, csv, json, junit, sarif"):
        export_session(session, "pdf")
