"""Acceptance corpus (issue #8): what a patient receives is what ``preview`` shows, and it is safe.

Every Bundle under ``bundles/`` (R4, shaped like Epic, Cerner, athena and HAPI send it) runs
through ``rules.preview.preview`` and through the live pipeline (fake EHR → polling → planning
→ delivery at each send time → outbox), with the shipped default rules and the Bundle's fixed
``now`` from ``expectations.yaml``. Both must agree exactly, and what reaches the patient must
hold everywhere: no forbidden word, inside quiet hours at the recipient's place, one SMS
segment of at most 160 characters, no place or staff name (no place is listed as
patient-facing in the default rules), caps per local day and week; plus each Bundle's own
expectations.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from fhir.resources.R4B import get_fhir_model_class

from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.migrate import upgrade
from rules.config import RulesConfig, load_rules_config
from rules.sms_length import sms_segments
from tests.corpus.harness import Outcome, Sent, live_outcome, preview_outcome, resources_of

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
BUNDLES = HERE / "bundles"
EXPECTATIONS: list[dict[str, Any]] = yaml.safe_load(
    (HERE / "expectations.yaml").read_text(encoding="utf-8")
)["bundles"]
BY_FILE = {entry["file"]: entry for entry in EXPECTATIONS}
NAMES = [entry["file"] for entry in EXPECTATIONS]
CLINIC_NAME = "Riverside Health"
QUIET_START, QUIET_END = time(8, 0), time(21, 0)
SMS_MAX_CHARS = 160
OPT_OUT_WORDS = {"en": ("STOP",), "es": ("STOP", "BAJA")}
LIFECYCLE_NOISE = frozenset({"catch-up-not-needed", "offset-passed", "catch-up-too-close-to-start"})
REQUIRED_CLASSES = frozenset(
    {
        "zone-from-location-address",
        "zone-from-location-position",
        "dst-spring-forward",
        "dst-fall-back",
        "non-gsm-name",
        "emoji-name",
        "long-name",
        "long-place-name",
        "language-text-only",
        "language-coded-region",
        "spanish",
        "free-text-description",
        "free-text-comment",
        "free-text-patient-instruction",
        "brand-in-medication-text",
        "brand-in-contained-medication",
        "brand-in-referenced-medication",
        "revealing-location-name",
        "oncology",
        "combined-same-place",
        "combined-two-places",
        "caps-week",
        "arrival-order",
        "sensitive-discharge",
        "involuntary-hold",
        "normal-discharge",
        "deceased",
        "minor",
    }
)


# ------------------------------------------------------------------ words and names


def fold(text: str) -> str:
    """Case- and accent-insensitive form: "Psiquiatría" and "psiquiatria" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _word_pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(fold(term)) + r"(?!\w)")


@cache
def forbidden_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    lines = (HERE / "forbidden_terms.txt").read_text(encoding="utf-8").splitlines()
    terms = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tuple((term, _word_pattern(term)) for term in terms)


def forbidden_in(text: str) -> list[str]:
    folded = fold(text)
    return [term for term, pattern in forbidden_patterns() if pattern.search(folded)]


def place_and_staff_names(document: dict[str, Any]) -> list[str]:
    """Names that must not reach a patient while no place is listed as patient-facing."""
    names: list[str] = []
    for resource in resources_of(document):
        kind = resource["resourceType"]
        if kind in ("Location", "HealthcareService"):
            names += [resource.get("name", ""), *(resource.get("alias") or [])]
        elif kind == "Organization" and resource.get("name") != CLINIC_NAME:
            names.append(resource.get("name", ""))
        elif kind == "Practitioner":
            names += [name.get("family", "") for name in resource.get("name") or []]
    found: list[str] = []
    for name in filter(None, names):
        found.append(name)
        if name.startswith("Riverside "):
            found.append(name.removeprefix("Riverside "))
    return found


def _texts(sent: Sent) -> list[str]:
    return [sent.text] + ([sent.subject] if sent.subject else [])


# ------------------------------------------------------------------ running both ways


def load_bundle(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((BUNDLES / name).read_text(encoding="utf-8"))
    return document


def fixed_now(name: str) -> datetime:
    return datetime.fromisoformat(str(BY_FILE[name]["now"]).replace("Z", "+00:00"))


@cache
def default_rules() -> RulesConfig:
    return load_rules_config(None)


class Runs:
    """Each Bundle is run once per module, both ways; results (or the error) are reused."""

    def __init__(self, ehr: EhrServer, workdir: Path, template_db: Path) -> None:
        self.ehr, self.workdir, self.template_db = ehr, workdir, template_db
        self._results: dict[tuple[str, str], Outcome | BaseException] = {}

    def _get(self, way: str, name: str) -> Outcome:
        if (way, name) not in self._results:
            try:
                if way == "preview":
                    result: Outcome | BaseException = preview_outcome(
                        load_bundle(name), default_rules(), fixed_now(name)
                    )
                else:
                    result = live_outcome(
                        load_bundle(name),
                        fixed_now(name),
                        ehr=self.ehr,
                        workdir=self.workdir / Path(name).stem,
                        template_db=self.template_db,
                    )
            except Exception as error:  # reported by every test that needs this run
                result = error
            self._results[(way, name)] = result
        found = self._results[(way, name)]
        if isinstance(found, BaseException):
            raise AssertionError(f"{way} run of {name} failed: {found!r}") from found
        return found

    def preview(self, name: str) -> Outcome:
        return self._get("preview", name)

    def live(self, name: str) -> Outcome:
        return self._get("live", name)

    def both(self, name: str) -> list[Outcome]:
        return [self.preview(name), self.live(name)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    workdir = tmp_path_factory.mktemp("corpus")
    template_db = workdir / "migrated.db"
    upgrade(f"sqlite:///{template_db}")
    with EhrServer() as ehr:
        yield Runs(ehr, workdir, template_db)


# ------------------------------------------------------------------ the corpus itself


def test_the_corpus_has_at_least_40_bundles_each_with_expectations() -> None:
    files = sorted(path.name for path in BUNDLES.glob("*.json"))
    assert len(files) >= 40
    assert files == sorted(NAMES)


def test_the_corpus_covers_every_class_the_issue_names() -> None:
    covered = {item for entry in EXPECTATIONS for item in entry["covers"]}
    assert REQUIRED_CLASSES - covered == set()


@pytest.mark.parametrize("name", NAMES)
def test_bundle_is_a_valid_r4_collection(name: str) -> None:
    document = load_bundle(name)
    assert (document["resourceType"], document["type"]) == ("Bundle", "collection")
    for resource in resources_of(document):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("name", NAMES)
def test_every_word_the_bundle_reveals_is_on_the_forbidden_list_or_a_place_name(
    name: str,
) -> None:
    """The forbidden list keeps up with the corpus: a probe of the bundle's own sensitive words."""
    text = json.dumps(load_bundle(name), ensure_ascii=False)
    probes = ["Psych", "Cancer", "Oncology", "PrEP", "VIH", "Suboxone", "Biktarvy", "involuntary"]
    for probe in probes:
        if _word_pattern(probe).search(fold(text)):
            assert forbidden_in(probe), probe


# ------------------------------------------------------------------ preview == live


@pytest.mark.parametrize("name", NAMES)
def test_live_pipeline_sends_and_withholds_what_preview_shows(runs: Runs, name: str) -> None:
    shown, live = runs.preview(name), runs.live(name)
    # A reminder replaced before it was due (e.g. by the combined message once the second
    # visit arrived) may be cancelled; anything preview sends or withholds may not.
    unsettled = {
        key: status
        for key, status in live.other.items()
        if not status.startswith("cancelled:") or key in shown.sent or key in shown.withheld
    }
    assert unsettled == {}, "live left messages neither sent nor withheld"
    assert sorted(live.sent) == sorted(shown.sent)
    assert live.withheld == shown.withheld


@pytest.mark.parametrize("name", NAMES)
def test_live_send_times_channels_and_texts_equal_preview(runs: Runs, name: str) -> None:
    shown, live = runs.preview(name), runs.live(name)
    common = sorted(set(shown.sent) & set(live.sent))
    for key in common:
        expected, actual = shown.sent[key], live.sent[key]
        assert (actual.send_at, actual.channel) == (expected.send_at, expected.channel), key
        assert actual.text == expected.text, key
        assert actual.subject == expected.subject, key
    assert common or not shown.sent, "nothing in common to compare"


# ------------------------------------------------------------------ safe everywhere


@pytest.mark.parametrize("name", NAMES)
def test_no_text_contains_a_forbidden_term(runs: Runs, name: str) -> None:
    for outcome in runs.both(name):
        for sent in outcome.sent.values():
            for text in _texts(sent):
                assert forbidden_in(text) == [], f"{outcome.source} {sent.key}: {text!r}"


@pytest.mark.parametrize("name", NAMES)
def test_no_place_or_staff_name_reaches_the_patient(runs: Runs, name: str) -> None:
    names = place_and_staff_names(load_bundle(name))
    for outcome in runs.both(name):
        for sent in outcome.sent.values():
            for text in _texts(sent):
                leaked = [n for n in names if _word_pattern(n).search(fold(text))]
                assert leaked == [], f"{outcome.source} {sent.key}: {text!r}"


@pytest.mark.parametrize("name", NAMES)
def test_every_send_is_inside_quiet_hours_at_the_recipient(runs: Runs, name: str) -> None:
    """Checked in the zone the trace names and in the zone of the recipient's place."""
    place = BY_FILE[name].get("zone")
    for outcome in runs.both(name):
        for sent in outcome.sent.values():
            assert sent.zone, f"{outcome.source} {sent.key}: no zone in the trace"
            for zone in filter(None, (sent.zone, place)):
                local = sent.send_at.astimezone(ZoneInfo(zone))
                assert QUIET_START <= local.time() <= QUIET_END, (
                    f"{outcome.source} {sent.key}: {local.isoformat()} in {zone}"
                )


@pytest.mark.parametrize("name", NAMES)
def test_every_sms_is_one_segment_of_at_most_160_characters(runs: Runs, name: str) -> None:
    for outcome in runs.both(name):
        for sent in outcome.sent.values():
            if sent.channel != "sms":
                continue
            encoding, segments = sms_segments(sent.text)
            assert (len(sent.text) <= SMS_MAX_CHARS, segments) == (True, 1), (
                f"{outcome.source} {sent.key}: {len(sent.text)} chars, {encoding}, "
                f"{segments} segments: {sent.text!r}"
            )


@pytest.mark.parametrize("name", NAMES)
def test_every_sms_names_the_clinic_and_how_to_opt_out(runs: Runs, name: str) -> None:
    for outcome in runs.both(name):
        for sent in outcome.sent.values():
            if sent.channel == "sms":
                opt_out = any(
                    word in sent.text for word in OPT_OUT_WORDS.get(sent.language, ("STOP",))
                )
                assert CLINIC_NAME in sent.text and opt_out, (
                    f"{outcome.source} {sent.key}: {sent.text!r}"
                )
            else:
                assert "reply stop" not in fold(sent.text), f"{outcome.source} {sent.key}"


@pytest.mark.parametrize("name", NAMES)
def test_caps_hold_per_local_day_and_rolling_week(runs: Runs, name: str) -> None:
    config = default_rules()
    place = BY_FILE[name].get("zone")
    for outcome in runs.both(name):
        days = sorted(
            s.send_at.astimezone(ZoneInfo(place or s.zone or config.organization.timezone)).date()
            for s in outcome.sent.values()
        )
        for day in days:
            assert days.count(day) <= config.caps.per_day, f"{outcome.source} {day}"
            week = [d for d in days if day - timedelta(days=6) <= d <= day]
            assert len(week) <= config.caps.per_week, f"{outcome.source} week to {day}"


@pytest.mark.parametrize("name", NAMES)
def test_outcomes_that_withhold_nothing_write_no_communication(runs: Runs, name: str) -> None:
    noise = {k: r for k, r in runs.live(name).withheld.items() if r in LIFECYCLE_NOISE}
    assert noise == {}


# ------------------------------------------------------------------ each bundle's own promise


def _same_zone(expected: str, actual: str | None, moment: datetime) -> bool:
    if actual is None:
        return False
    wanted, got = ZoneInfo(expected), ZoneInfo(actual)
    probes = [moment, datetime(moment.year, 1, 15, 12, tzinfo=UTC)]
    probes.append(datetime(moment.year, 7, 15, 12, tzinfo=UTC))
    return all(p.astimezone(wanted).utcoffset() == p.astimezone(got).utcoffset() for p in probes)


def check_expectations(outcome: Outcome, expect: dict[str, Any]) -> list[str]:
    """Every way ``outcome`` breaks the Bundle's stated expectations (empty when it holds)."""
    problems: list[str] = []
    sent = list(outcome.sent.values())
    zone = expect.get("zone")
    if expect.get("sent_none"):
        if sent:
            problems.append(f"expected nothing sent, sent {sorted(outcome.sent)}")
    elif len(sent) < expect.get("sent_min", 1):
        problems.append(f"expected at least {expect.get('sent_min', 1)} sent, got {len(sent)}")
    withheld_all = expect.get("withheld_all")
    if withheld_all:
        wrong = {k: r for k, r in outcome.withheld.items() if r != withheld_all}
        if not outcome.withheld or wrong:
            problems.append(f"expected all withheld as {withheld_all}, got {outcome.withheld}")
    else:
        allowed = set(expect.get("withheld_allowed", []))
        wrong = {k: r for k, r in outcome.withheld.items() if r not in allowed}
        if wrong:
            problems.append(f"unexpected withheld reasons {wrong}")
    for reason in expect.get("withheld_reasons_include", []):
        if reason not in outcome.withheld.values():
            problems.append(f"expected some message withheld as {reason}")
    for key in expect.get("sent_keys_include", []):
        if key not in outcome.sent:
            problems.append(f"expected {key} sent (have {sorted(outcome.sent)})")
    channel = expect.get("channel", "sms")
    for item in sent:
        text = item.text
        if zone and not _same_zone(zone, item.zone, item.send_at):
            problems.append(f"{item.key}: zone {item.zone}, expected {zone}")
        if item.channel != channel:
            problems.append(f"{item.key}: channel {item.channel}, expected {channel}")
        if "language" in expect and item.language != expect["language"]:
            problems.append(f"{item.key}: language {item.language}, expected {expect['language']}")
        if "generic" in expect and item.template.endswith("-generic") != expect["generic"]:
            problems.append(f"{item.key}: template {item.template}, generic={expect['generic']}")
        for wanted in expect.get("text_contains", []):
            if wanted not in text:
                problems.append(f"{item.key}: text lacks {wanted!r}: {text!r}")
        for unwanted in expect.get("text_not_contains", []):
            if fold(unwanted) in fold(text):
                problems.append(f"{item.key}: text has {unwanted!r}: {text!r}")
    for wanted in expect.get("text_contains_any", []):
        if sent and not any(wanted in item.text for item in sent):
            problems.append(f"no text contains {wanted!r}")
    for key, local in (expect.get("send_local") or {}).items():
        found = outcome.sent.get(key)
        if found is None:
            problems.append(f"{key}: expected sent at {local} local, not sent")
            continue
        actual = found.send_at.astimezone(ZoneInfo(zone or "UTC")).strftime("%Y-%m-%dT%H:%M")
        if actual != local:
            problems.append(f"{key}: sent {actual} local, expected {local}")
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_preview_keeps_the_bundles_promise(runs: Runs, name: str) -> None:
    assert check_expectations(runs.preview(name), BY_FILE[name]) == []


@pytest.mark.parametrize("name", NAMES)
def test_live_pipeline_keeps_the_bundles_promise(runs: Runs, name: str) -> None:
    assert check_expectations(runs.live(name), BY_FILE[name]) == []
