"""The starter content the project ships (sequences/, email_templates/, sms_templates/, forms/, brand.env):
the one test module that reads it. Every other test uses its own frozen copy in tests/content, so a user
who edits the starter content into their own still gets a green `make test`; this module then says
whether their content is sound."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.config import load_settings
from nurture.content.checker import TemplateCheck
from nurture.content.registry import SequenceRegistry
from nurture.content.segments_file import load_segments
from nurture.insight import simulate
from tests.conftest import ROOT

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def settings_outside_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("API_KEY", "k" * 32)
    for name in ("NURTURE_ROOT", "SEQUENCES_DIR", "TEMPLATES_DIR", "FORMS_DIR", "SMS_TEMPLATES_DIR", "DATABASE_URL",
                 "SEGMENTS_DIR", "BROADCASTS_DIR",
                 "EMAIL_BACKEND", "SMS_BACKEND", "BRAND_NAME", "MAIL_FROM", "POSTAL_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def starter_registry() -> SequenceRegistry:
    settings = load_settings({"SECRET_KEY": "x" * 32, "API_KEY": "k" * 32}, root=ROOT)
    registry = SequenceRegistry(ROOT / "sequences", TemplateCheck.for_settings(settings))
    registry.refresh()
    return registry


def test_the_real_repository_tree_passes_with_a_one_line_summary() -> None:
    result = CliRunner().invoke(main, ["check", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].startswith("ok:")
    assert lines[0].endswith("no problems")


def test_every_starter_sequence_loads_and_simulates_to_an_end() -> None:
    registry = starter_registry()
    assert registry.problems == [] and registry.all()
    for sequence in registry.all():
        contact = simulate.parse_contact("timezone=America/Los_Angeles", registry.lifecycle)
        timeline = simulate.simulate(sequence, contact, START, [], registry.lifecycle, None, registry.all())
        assert timeline.entries, sequence.id
        assert simulate.format_timeline(timeline), sequence.id


def test_the_starter_brand_names_the_sender_and_its_postal_address(tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 32, "API_KEY": "k" * 32},
                             root=ROOT)
    assert settings.brand_name and settings.postal_address.strip()
    assert settings.mail_domain != "localhost"  # a real sender, not the unconfigured default


def test_the_starter_footer_names_the_brand_once(tmp_path: Path) -> None:
    """The email footer prints the brand, then the postal address under it: an address that starts with the
    brand again reads "Juniper Pottery Studio / Juniper Pottery Studio, 12 Kiln Lane" in every email."""
    settings = load_settings({"VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 32, "API_KEY": "k" * 32},
                             root=ROOT)
    look = (ROOT / "email_templates" / "_base.txt").read_text()  # the footer every language's words extend
    assert "{{ brand.name }}\n{{ postal_address }}" in look
    assert settings.brand_name not in settings.postal_address


def test_the_starter_integrations_map_to_products_the_starter_sequences_offer() -> None:
    from nurture.content.integrations_file import parse_integrations

    integrations, problems = parse_integrations((ROOT / "integrations.yaml").read_text(), "integrations.yaml")
    assert problems == []
    offered = {name for s in starter_registry().all() for step in s.steps for o in step.offers
               for name in (o.after, o.product)}
    mapped = set(integrations.stripe_products.values()) | {
        product for hook in integrations.hooks.values() for product in hook.products.values()}
    assert mapped and mapped <= offered, mapped - offered
    assert set(integrations.hooks) == {"shopify-orders", "calendly-bookings"}


def test_the_starter_segments_load_and_each_finds_the_contact_it_is_for(tmp_path: Path) -> None:
    from tests.segments_support import starter_people

    segments, problems = load_segments(ROOT / "segments")
    assert problems == []
    assert set(segments) == {"engaged-leads", "customers-90d", "lapsed"}
    found = starter_people(f"sqlite:///{tmp_path / 'starter.db'}", segments)
    assert found == {"engaged-leads": ["lead@example.test"], "customers-90d": ["buyer@example.test"],
                     "lapsed": ["quiet@example.test"]}


def test_the_starter_broadcast_loads_and_names_a_starter_segment_and_template() -> None:
    """Its templates pass the checks a sequence step's get (they exist, parse, carry the unsubscribe link
    and the postal address): load_broadcasts runs them."""
    from nurture.content.broadcasts_file import content_version, load_broadcasts

    settings = load_settings({"SECRET_KEY": "x" * 32, "API_KEY": "k" * 32}, root=ROOT)
    check = TemplateCheck.for_settings(settings)
    segments, _ = load_segments(ROOT / "segments")
    found, problems = load_broadcasts(ROOT / "broadcasts", check, set(segments))
    assert problems == [] and set(found) == {"open-studio"}
    spec, _ = found["open-studio"]
    assert spec.segment in segments and spec.send_at is None and spec.timing == "own-window"
    assert (ROOT / "email_templates" / f"{spec.template}.html").is_file()
    assert len(content_version(spec, check)) == 12


def test_the_french_starter_emails_cover_the_confirmation_and_lead_nurture_and_render() -> None:
    """What a French contact gets from the starter content: its own template and subject at every step."""
    from nurture.content.rendering import TemplateCatalog, make_environment
    from nurture.content.views import BrandView, ContactView, SequenceView, StepView

    registry = starter_registry()
    catalog = TemplateCatalog(make_environment(ROOT / "email_templates"))
    for sequence_id in ("confirm-email", "lead-nurture"):
        sequence = registry.get(sequence_id)
        assert sequence is not None
        for step in sequence.steps:
            subject, locale = step.subject_for(("fr",))
            context = {"contact": ContactView("Ann", "", "ann@example.com", None, None, "lead", (), {}),
                       "brand": BrandView("Juniper", "hello@example.com", "https://x"), "postal_address": "1 Rd",
                       "unsubscribe_url": "https://x/u/t", "preferences_url": "https://x/u/t",
                       "confirm_url": "https://x/confirm/t", "referral_url": "", "rating_links": [],
                       "sequence": SequenceView(sequence.id, sequence.name), "step": StepView(step.id, step.kind)}
            rendered = catalog.render_email(step.template, subject, context, ("fr",))
            assert (locale, rendered.locale) == ("fr", "fr"), step.id
            assert "Se désabonner" in rendered.text and "L'équipe de Juniper" in rendered.text, step.id
            assert '<html lang="fr">' in rendered.html and ">Se désabonner</a>" in rendered.html, step.id
