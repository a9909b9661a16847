"""integrations.yaml: what `nurture check` says about it (path:line: message), the mapping it gives (re-read
while running, a broken edit keeps the last good one), the pure payload mapping and the signature styles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.content.integrations_file import IntegrationsFile
from nurture.rules.inbound import Hook, NotForUs, dotted, hook_inbound, major_amount, stripe_inbound
from nurture.rules.inbound_signatures import nurture_header, verify
from tests.conftest import CONTENT
from tests.integrations_support import INTEGRATIONS, invoice_paid

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def settings_outside_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("API_KEY", "k" * 32)
    for name in ("NURTURE_ROOT", "SEQUENCES_DIR", "TEMPLATES_DIR", "DATABASE_URL", "INTEGRATIONS_FILE"):
        monkeypatch.delenv(name, raising=False)


def checked_project(tmp_path: Path, integrations: str) -> Path:
    root = tmp_path / "project"
    for folder in ("sequences", "email_templates"):
        import shutil

        shutil.copytree(CONTENT / folder, root / folder)
    (root / "integrations.yaml").write_text(textwrap.dedent(integrations).lstrip("\n"))
    return root


def test_check_passes_a_good_file_and_names_each_problem_of_a_bad_one_by_line(tmp_path: Path) -> None:
    good = CliRunner().invoke(main, ["check", "--root", str(checked_project(tmp_path / "a", INTEGRATIONS))])
    assert good.exit_code == 0, good.output
    bad = checked_project(tmp_path / "b", """
        stripe:
          products: [price_1]
        hooks:
          Shop_Orders: {}
          shop:
            secret: shpss_0123456789abcdef
            signature: hmac-md5
            event: Purchase!
            id: "order id"
            fields: {amount: total_price}
          booking:
            secret: BOOKING_WEBHOOK_SECRET
            event: class-booked
            id: uri
            fields: {email: "payload..email"}
        attribution: {click: 5 days, send: 0s, view: 1d}
        """)
    result = CliRunner().invoke(main, ["check", "--root", str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("integrations.yaml:")]
    expected = [
        "integrations.yaml:2: stripe products must be a mapping",
        "integrations.yaml:4: hook name 'Shop_Orders' must use lowercase letters",
        "integrations.yaml:6: secret names the variable that holds it, like SHOP_WEBHOOK_SECRET",
        "integrations.yaml:7: unknown signature 'hmac-md5' (expected one of: nurture, shopify, calendly)",
        "integrations.yaml:8: event is a type like purchase",
        "integrations.yaml:9: id 'order id' is not a dotted path",
        "integrations.yaml:10: hook 'shop' fields must say where the email is",
        "integrations.yaml:15: hook 'booking' fields: 'payload..email' is not a dotted path",
        "integrations.yaml:16: bad duration '5 days'",
        "integrations.yaml:16: send must be longer than 0s",
        "integrations.yaml:16: unknown key 'view' in attribution",
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_no_file_is_no_problem_and_the_defaults_apply(tmp_path: Path) -> None:
    holder = IntegrationsFile(tmp_path / "integrations.yaml")
    assert holder.get().hooks == {} and holder.get().attribution.click == timedelta(days=5)


def test_the_running_mapping_follows_the_file_and_a_broken_edit_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "integrations.yaml"
    path.write_text("stripe: {products: {price_a: wheel-6-week}}\n")
    holder = IntegrationsFile(path)
    assert holder.get().stripe_products == {"price_a": "wheel-6-week"}
    path.write_text("stripe: {products: {price_a: glaze-kit, price_b: taster-class}}\n")
    os.utime(path, ns=(1, 2))  # a new stamp even within the file system's clock resolution
    assert holder.get().stripe_products == {"price_a": "glaze-kit", "price_b": "taster-class"}
    path.write_text("stripe: {products: [oops]}\n")
    os.utime(path, ns=(3, 4))
    assert holder.get().stripe_products == {"price_a": "glaze-kit", "price_b": "taster-class"}


# --- the pure mapping ----------------------------------------------------------------------------------------

def test_dotted_paths_walk_objects_and_lists_and_say_when_a_part_is_missing() -> None:
    payload = {"customer": {"email": "a@example.com"}, "line_items": [{"sku": "K1"}]}
    assert dotted(payload, "customer.email") == "a@example.com" and dotted(payload, "line_items.0.sku") == "K1"
    assert dotted(payload, "line_items.1.sku") is dotted(payload, "nope") is dotted(payload, "customer.email.x")


def test_stripe_amounts_are_read_in_the_currency_s_own_minor_unit() -> None:
    assert major_amount(24000, "usd") == 240.0 and major_amount(5000, "jpy") == 5000.0
    assert major_amount(12345, "kwd") == 12.345 and major_amount("24000", "usd") is None
    assert major_amount(True, "usd") is None


def test_an_invoice_s_price_is_found_in_the_old_and_the_new_api_shape() -> None:
    products = {"price_old": "wheel-6-week", "price_new": "glaze-kit"}
    old = stripe_inbound(invoice_paid("a@example.com", NOW, price="price_old"), products, NOW)
    new = stripe_inbound(invoice_paid("a@example.com", NOW, price="price_new", new_shape=True), products, NOW)
    assert (old.data["product"], new.data["product"]) == ("wheel-6-week", "glaze-kit")
    assert old.key.startswith("stripe:evt_") and old.names == {"first_name": "Bea", "last_name": "Moss"}


def test_a_stripe_event_in_the_future_is_taken_as_now() -> None:
    event = invoice_paid("a@example.com", NOW + timedelta(days=3))
    assert stripe_inbound(event, {}, NOW).occurred_at == NOW


def test_a_hook_maps_fields_and_refuses_payloads_it_cannot_use() -> None:
    hook = Hook("pos", "POS_WEBHOOK_SECRET", event="purchase", idempotency="ref",
                fields={"email": "buyer.email", "amount": "total", "product": "item", "currency": "cur"},
                products={"SKU-1": "glaze-kit"})
    found = hook_inbound(hook, {"ref": 7, "buyer": {"email": "a@example.com"}, "total": "12.50", "item": "SKU-1",
                                "cur": "eur"})
    assert found.key == "hook:pos:7" and found.data == {"source": "hook:pos", "amount": 12.5, "product": "glaze-kit",
                                                        "currency": "EUR"}
    assert hook_inbound(hook, {"ref": 8, "buyer": {"email": "a@example.com"}, "total": "lots"}).data["amount"] is None
    for payload in ([1, 2], {"ref": 9}, {"buyer": {"email": "a@example.com"}}, {"ref": {"a": 1}, "buyer": {
            "email": "a@example.com"}}):
        with pytest.raises(NotForUs):
            hook_inbound(hook, payload)


# --- signatures ----------------------------------------------------------------------------------------------

BODY = b'{"id": 1}'


def test_each_signature_style_takes_its_own_header_and_nothing_else() -> None:
    shopify = base64.b64encode(hmac.new(b"s3cret", BODY, hashlib.sha256).digest()).decode()
    stamp = str(int(NOW.timestamp()))
    calendly = f"t={stamp},v1=" + hmac.new(b"s3cret", stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert verify("nurture", BODY, nurture_header(BODY, "s3cret"), "s3cret", NOW)
    assert verify("shopify", BODY, shopify, "s3cret", NOW)
    assert verify("calendly", BODY, calendly, "s3cret", NOW)
    assert verify("calendly", BODY, calendly, "s3cret", NOW + timedelta(minutes=4))
    assert not verify("calendly", BODY, calendly, "s3cret", NOW + timedelta(minutes=6))  # a replay, later
    for style, header in (("nurture", nurture_header(BODY, "other")), ("shopify", "%%%"), ("calendly", "t=x,v1=y"),
                          ("nurture", "sha256=ü"), ("shopify", None), ("nurture", nurture_header(BODY + b" ",
                                                                                               "s3cret"))):
        assert not verify(style, BODY, header, "s3cret", NOW), (style, header)
