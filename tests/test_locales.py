"""Each contact's language (issue 13, item 4): a French contact gets the French confirm page, the French
emails and a French STOP reply; a language without a template falls back to the default; the language comes
from the form, the import, the API or the browser; `nurture check` names the files a language lacks; and
nurture's own words are translated, completely, in the catalog it ships."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from click.testing import CliRunner
from sqlmodel import Session

from nurture.cli import main
from nurture.config import ConfigError, load_settings
from nurture.content.app_words import TRANSLATIONS_DIR, translate
from nurture.content.loader import parse_sequence
from nurture.content.rendering import RenderError, TemplateCatalog, make_environment, make_text_environment
from nurture.insight import why
from nurture.rules.locales import InvalidLocale, lookup_chain, negotiate, normalise_locale
from nurture.rules.sms import keyword, keyword_locale
from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import FakeClock, SmtpServer, worker_env
from tests.import_support import run_cli, write_csv
from tests.locales_support import (
    FORM,
    FRENCH_BROWSER,
    contact,
    events,
    extracted_catalog,
    html_part,
    link_path,
    shipped_catalog,
    sign_up,
    text_in,
    text_part,
    use_starter_content,
)
from tests.twilio_fake import ACCOUNT_SID, AUTH_TOKEN

ANN = "+15035550100"


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path, smtp_server: SmtpServer) -> Runtime:  # noqa: ANN001
    use_starter_content(project)
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, FORM_RATE_LIMIT="1000 per minute",
                        TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, SMS_OPT_OUT_REPLIES="nurture")


# --- the check, end to end ---------------------------------------------------------------------------

def test_a_french_contact_gets_the_french_confirm_page_emails_and_stop_reply(
        rt: Runtime, clock: FakeClock, smtp_server: SmtpServer) -> None:
    from tests.helpers import send_due

    client = create_app(rt).test_client()
    page = client.get(f"/forms/{FORM}", headers=FRENCH_BROWSER).get_data(as_text=True)
    assert '<html lang="fr">' in page and "(facultatif)" in page and "Laissez ce champ vide" in page

    answer = sign_up(client, rt, clock, FRENCH_BROWSER, email="ann@example.com", first_name="Ann", phone=ANN,
                     sms_consent="on")
    assert answer.status_code == 303
    assert contact(rt, "ann@example.com").locale == "fr"  # negotiated from Accept-Language

    send_due(rt)
    [confirmation] = smtp_server.handler.to("ann@example.com")
    assert confirmation.message["Subject"] == "Confirmez votre adresse e-mail pour Juniper Pottery Studio"
    text = text_part(confirmation)
    assert text.startswith("Bonjour Ann,") and "nous l'espérons" in text and "Se désabonner :" in text
    assert '<html lang="fr">' in html_part(confirmation) and "gérer vos préférences" in html_part(confirmation)

    confirm = link_path(text, "/confirm/")
    shown = client.get(confirm).get_data(as_text=True)  # no Accept-Language: the contact's own language
    assert '<html lang="fr">' in shown and "Confirmez votre adresse e\u2011mail" in shown
    assert "Confirmer mon adresse e\u2011mail" in shown
    done = client.post(confirm).get_data(as_text=True)
    assert "C'est parti !" in done and "Juniper Pottery Studio est en route" in done

    send_due(rt)
    welcome = smtp_server.handler.to("ann@example.com")[-1]
    assert welcome.message["Subject"] == "Bienvenue chez Juniper Pottery Studio, Ann !"
    assert "PREMIÈRE ÉTAPE : LE CENTRAGE" in text_part(welcome)
    assert [e.data.get("locale") for e in events(rt, "email.sent")] == ["fr", "fr"]
    with Session(rt.db) as session:
        story = why.format_story(why.explain(session, "ann@example.com", rt.sequences, rt.clock(), rt.settings.sms))
    assert sum("educate by email in fr (its fr template)" in line for line in story) == 1, story

    unsubscribe = link_path(text_part(welcome), "/u/")  # the footer's first link: the unsubscribe page
    assert unsubscribe.endswith("/unsubscribe")
    page = client.get(unsubscribe).get_data(as_text=True)
    assert "<h1>Se désabonner</h1>" in page and "Me désabonner de tous les e-mails marketing" in page
    preferences = client.get(unsubscribe.removesuffix("/unsubscribe")).get_data(as_text=True)
    assert "Préférences e-mail" in preferences and "Me désabonner de tous les e-mails marketing" in preferences

    status, twiml = text_in(client, ANN, "STOP")
    assert status == 200 and "votre désabonnement est confirmé" in twiml and "Répondez START" in twiml
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"


def test_an_english_browser_gets_english_and_the_contact_keeps_no_language(
        rt: Runtime, clock: FakeClock, smtp_server: SmtpServer) -> None:
    from tests.helpers import send_due

    client = create_app(rt).test_client()
    english = {"Accept-Language": "en-US,en;q=0.8", "User-Agent": "Mozilla/5.0 TestBrowser/1.0"}
    assert sign_up(client, rt, clock, english, email="bob@example.com").status_code == 303
    assert contact(rt, "bob@example.com").locale == "en"
    send_due(rt)
    [confirmation] = smtp_server.handler.to("bob@example.com")
    assert confirmation.message["Subject"] == "Please confirm your email for Juniper Pottery Studio"
    assert "Unsubscribe:" in text_part(confirmation)
    assert [e.data.get("locale") for e in events(rt, "email.sent")] == [None]  # the default files


def test_form_errors_come_back_in_the_browser_language_and_save_nothing(rt: Runtime, clock: FakeClock) -> None:
    client = create_app(rt).test_client()
    page = sign_up(client, rt, clock, FRENCH_BROWSER, email="ann example.com", phone="12")
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Veuillez saisir une adresse e-mail valide." in html and "Veuillez vérifier les champs signalés." in html
    assert "Veuillez saisir un numéro de téléphone valide" in html
    as_json = sign_up(client, rt, clock, {**FRENCH_BROWSER, "Accept": "application/json"}, email="")
    assert as_json.get_json()["errors"]["email"] == "Ce champ est obligatoire."


def test_a_french_contact_gets_the_default_email_where_there_is_no_french_one(
        make_runtime, database_url: str, smtp_server: SmtpServer) -> None:  # noqa: ANN001
    from tests.helpers import add_contact, send_due

    rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)  # tests/content: no French
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann", locale="fr")
    send_due(rt)
    [welcome] = smtp_server.handler.to("ann@example.com")
    assert welcome.message["Subject"].startswith("Welcome to Juniper Pottery Studio")
    assert "Unsubscribe" in text_part(welcome)
    assert [e.data.get("locale") for e in events(rt, "email.sent")] == [None]


# --- SMS replies ---------------------------------------------------------------------------------------------

@pytest.fixture
def sms_rt(make_runtime, sqlite_url: str, project: Path) -> Runtime:  # noqa: ANN001
    return make_runtime(sqlite_url, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                        SMS_OPT_OUT_REPLIES="nurture")


def test_french_keywords_act_and_are_answered_in_french(sms_rt: Runtime) -> None:
    from tests.helpers import add_contact

    add_contact(sms_rt, "zoe@example.com", phone="+15035550111")  # no language on record
    add_contact(sms_rt, "eve@example.com", phone="+15035550122", locale="fr")
    client = create_app(sms_rt).test_client()
    assert "pour toute aide, écrivez à" in text_in(client, "+15035550111", "aide")[1]
    assert "pour toute aide, écrivez à" in text_in(client, "+15035550122", "HELP")[1]
    assert "for help, email" in text_in(client, "+15035550111", "HELP")[1]
    status, twiml = text_in(client, "+15035550111", "Arrêt")
    assert status == 200 and "votre désabonnement est confirmé" in twiml
    assert (keyword("ARRET"), keyword("arrêt."), keyword("Aide"), keyword_locale("STOP")) == (
        "stop", "stop", "help", None)


def test_by_default_twilio_answers_stop_and_nurture_stays_silent(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    from tests.helpers import add_contact

    rt = make_runtime(sqlite_url, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    add_contact(rt, "eve@example.com", phone="+15035550122", locale="fr")
    status, twiml = text_in(create_app(rt).test_client(), "+15035550122", "STOP")
    assert status == 200 and "<Message>" not in twiml


# --- templates per language: lookup and fallback ---------------------------------------------------------------

LAYOUT = ('<html><body>{% block content %}{% endblock %}<a href="{{ unsubscribe_url }}">{WORD}</a>'
          "{{ postal_address }}</body></html>")


def _templates(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")


def test_each_file_is_looked_for_in_the_language_first_then_the_default(tmp_path: Path) -> None:
    page = '{% extends "_layout.html" %}{% block content %}<p>BODY</p>{% endblock %}'
    _templates(tmp_path, {
        "_layout.html": LAYOUT.replace("{WORD}", "Unsubscribe"), "_layout.txt": "{% block content %}{% endblock %}",
        "_layout.fr.html": LAYOUT.replace("{WORD}", "Se désabonner"),
        "a.html": page.replace("BODY", "Hello"), "a.txt": "Hello", "a.fr.html": page.replace("BODY", "Bonjour"),
        "a.fr.txt": "Bonjour", "b.html": page.replace("BODY", "Only English"), "b.txt": "Only English",
        "a.pt.html": page.replace("BODY", "Olá"), "a.pt.txt": "Olá",
    })
    catalog = TemplateCatalog(make_environment(tmp_path))
    context = {"unsubscribe_url": "https://x/u/1", "postal_address": "1 Road"}
    french = catalog.render_email("a", "S", context, ("fr",))
    assert "Bonjour" in french.html and "Se désabonner" in french.html and french.locale == "fr"
    fallback = catalog.render_email("b", "S", context, ("fr",))
    assert "Only English" in fallback.html and "Se désabonner" in fallback.html and fallback.locale is None
    default = catalog.render_email("a", "S", context, ())
    assert "Hello" in default.html and "Unsubscribe" in default.html and default.locale is None
    brazilian = catalog.render_email("a", "S", context, lookup_chain("pt_BR", "en"))
    assert "Olá" in brazilian.html and brazilian.locale == "pt"  # pt_BR falls back to pt, then the default
    (tmp_path / "b.fr.html").write_text(page.replace("BODY", "Enfin en français"), encoding="utf-8")
    assert catalog.render_email("b", "S", context, ("fr",)).locale == "fr"  # added later: noticed at once


# The look in one file, each language's layout only its words (as the starter content ships them).
BASE = ('<html lang="{% block lang %}{% endblock %}"><head><style>.footer a { color: #7d7268; }</style></head>'
        '<body>{% block content %}{% endblock %}<p class="footer"><a href="{{ unsubscribe_url }}">'
        "{% block unsubscribe %}{% endblock %}</a></p>{{ postal_address }}</body></html>")
WORDS = '{# Only the words. #}\n{% extends "_base.html" %}\n{% block lang %}LANG{% endblock %}\n' \
        "{% block unsubscribe %}WORD{% endblock %}\n"
ENGLISH = WORDS.replace("LANG", "en").replace("WORD", "Unsubscribe")


def test_a_language_layout_of_only_words_renders_the_shared_look_as_a_full_copy_of_it_would(tmp_path: Path) -> None:
    page = '{% extends "_layout.html" %}{% block content %}<p>BODY</p>{% endblock %}'
    pages = {"a.html": page.replace("BODY", "Hello"), "a.txt": "Hello", "a.fr.html": page.replace("BODY", "Bonjour"),
             "a.fr.txt": "Bonjour", "b.html": page.replace("BODY", "Only English"), "b.txt": "Only English"}
    words, copies = tmp_path / "words", tmp_path / "copies"
    _templates(words, {**pages, "_base.html": BASE,
                       "_layout.html": ENGLISH,
                       "_layout.fr.html": WORDS.replace("LANG", "fr").replace("WORD", "Se désabonner")})
    look = BASE.replace("{% block lang %}{% endblock %}", "LANG").replace("{% block unsubscribe %}{% endblock %}",
                                                                          "WORD")
    _templates(copies, {**pages, "_layout.html": look.replace("LANG", "en").replace("WORD", "Unsubscribe"),
                        "_layout.fr.html": look.replace("LANG", "fr").replace("WORD", "Se désabonner")})
    context = {"unsubscribe_url": "https://x/u/1", "postal_address": "1 Road"}
    by_words, by_copies = TemplateCatalog(make_environment(words)), TemplateCatalog(make_environment(copies))
    for template, chain in [("a", ()), ("a", ("fr",)), ("b", ("fr",)), ("a", ("fr_CA", "fr")), ("a", ("de",))]:
        rendered = by_words.render_email(template, "S", context, chain)
        assert rendered == by_copies.render_email(template, "S", context, chain), (template, chain)
        assert "{%" not in rendered.html and 'style="color:#7d7268"' in rendered.html  # the base's look, inlined
    french = by_words.render_email("b", "S", context, ("fr",))
    assert '<html lang="fr">' in french.html and ">Se désabonner</a>" in french.html and "Only English" in french.html
    assert '<html lang="en">' in by_words.render_email("a", "S", context, ("de",)).html  # no German layout


def test_a_template_may_replace_a_word_its_layout_gives_and_the_most_derived_file_wins(tmp_path: Path) -> None:
    _templates(tmp_path, {"_base.html": BASE, "_layout.html": ENGLISH,
                          "a.html": '{% extends "_layout.html" %}{% block content %}Hi{% endblock %}'
                                    "{% block unsubscribe %}Stop these{% endblock %}", "a.txt": "Hi"})
    html = TemplateCatalog(make_environment(tmp_path)).render_email(
        "a", "S", {"unsubscribe_url": "u", "postal_address": "p"}).html
    assert '<html lang="en">' in html and ">Stop these</a>" in html and "Unsubscribe" not in html


def test_a_word_a_language_layout_leaves_out_is_the_bases_own_not_an_empty_link(tmp_path: Path) -> None:
    # The starter base gives its English words as the blocks' own: a German layout that translates
    # only `lang` still shows the unsubscribe link with words on it, never an empty, invisible link.
    base = BASE.replace("{% block unsubscribe %}{% endblock %}", "{% block unsubscribe %}Unsubscribe{% endblock %}")
    _templates(tmp_path, {"_base.html": base, "_layout.html": ENGLISH,
                          "_layout.de.html": '{% extends "_base.html" %}{% block lang %}de{% endblock %}',
                          "a.html": '{% extends "_layout.html" %}{% block content %}Hallo{% endblock %}',
                          "a.txt": "Hallo"})
    html = TemplateCatalog(make_environment(tmp_path)).render_email(
        "a", "S", {"unsubscribe_url": "https://x/u/1", "postal_address": "p"}, ("de",)).html
    assert '<html lang="de">' in html and 'style="color:#7d7268">Unsubscribe</a>' in html


def test_a_language_layout_that_extends_the_default_name_is_a_render_error_not_a_recursion(tmp_path: Path) -> None:
    """`_layout.fr.html` saying `{% extends "_layout.html" %}` would be read as itself for a French contact."""
    _templates(tmp_path, {"_base.html": BASE, "_layout.html": ENGLISH,
                          "_layout.fr.html": WORDS.replace("_base.html", "_layout.html"),
                          "a.html": '{% extends "_layout.html" %}{% block content %}Hi{% endblock %}', "a.txt": "Hi"})
    catalog = TemplateCatalog(make_environment(tmp_path))
    context = {"unsubscribe_url": "u", "postal_address": "p"}
    assert "Unsubscribe" in catalog.render_email("a", "S", context, ()).html
    with pytest.raises(RenderError, match="a.html extends _layout.html extends _layout.html: a template cannot "
                                          "extend itself"):
        catalog.render_email("a", "S", context, ("fr",))


def test_a_text_is_looked_for_in_the_language_first_then_the_default(tmp_path: Path) -> None:
    _templates(tmp_path, {"booked.txt": "See you at {{ when }}.", "booked.fr.txt": "À bientôt, {{ when }}.",
                          "other.txt": "Only English."})
    catalog = TemplateCatalog(make_environment(tmp_path), make_text_environment(tmp_path))
    assert catalog.render_text("booked", {"when": "10:00"}, ("fr",)) == "À bientôt, 10:00."
    assert catalog.text_variant("booked", ("fr_CA", "fr")) == ("booked.fr.txt", "fr")
    assert catalog.render_text("other", {}, ("fr",)) == "Only English."
    assert catalog.text_variant("other", ("fr",)) == ("other.txt", None)


def test_a_subject_per_language_falls_back_to_the_first_and_a_bad_tag_is_a_problem_with_its_line() -> None:
    source = textwrap.dedent("""\
        id: hello
        name: Hello
        stage: nurture-prospects
        steps:
          - id: one
            kind: educate
            channel: email
            template: lead/edu-1
            subject:
              en: "Hello"
              fr-FR: "Bonjour"
          - id: two
            kind: educate
            channel: email
            template: lead/edu-2
            subject: {en: "Hi", klingon-xx: "Qapla"}
        """)
    sequence, problems = parse_sequence(source, "sequences/hello.yaml")
    assert [(p.line, "klingon-xx" in p.message) for p in problems] == [(16, True)]
    sequence, _ = parse_sequence(source.replace("klingon-xx", "fr"), "sequences/hello.yaml")
    one = sequence.steps[0]
    assert one.subject_for(("fr_FR", "fr")) == ("Bonjour", "fr_FR")
    assert one.subject_for(("de",)) == ("Hello", None) and one.subject_for(()) == ("Hello", None)


def test_check_names_each_file_a_language_lacks_at_its_step(project: Path) -> None:
    lead = project / "email_templates" / "lead"
    for suffix in (".html", ".txt"):
        (lead / f"edu-1.fr{suffix}").write_text((lead / f"edu-1{suffix}").read_text())
    result = CliRunner().invoke(main, ["check", "--root", str(project)], env=worker_env(project, "sqlite://"))
    assert result.exit_code == 0, result.output  # a warning, not a failure
    lines = (project / "sequences" / "lead-nurture.yaml").read_text().splitlines()
    edu2 = next(n for n, line in enumerate(lines, 1) if "template: lead/edu-2" in line)
    assert (f"sequences/lead-nurture.yaml:{edu2}: warning: step 'edu-2': no email_templates/lead/edu-2.fr.html: "
            "contacts in 'fr' get the default email_templates/lead/edu-2.html") in result.output
    assert "edu-2.fr.txt" in result.output and "offer.fr.html" in result.output
    assert "step 'edu-1': no" not in result.output
    (lead / "edu-3.fr-CA.html").write_text((lead / "edu-3.html").read_text())
    misnamed = CliRunner().invoke(main, ["check", "--root", str(project)], env=worker_env(project, "sqlite://"))
    assert ("email_templates/lead/edu-3.fr-CA.html:1: warning: the language suffix is spelt 'fr-CA': name it "
            "'fr_CA' (edu-3.fr_CA.html) or no contact gets this file") in misnamed.output


# --- where the language comes from -----------------------------------------------------------------------------

def test_a_form_may_offer_a_language_menu_or_pass_one_hidden(rt: Runtime, clock: FakeClock, project: Path) -> None:
    (project / "forms" / "club.yaml").write_text(textwrap.dedent("""\
        id: club
        name: Club
        sequence: lead-nurture
        double_opt_in: false
        consent_text: Yes, email me.
        fields:
          - name: email
          - name: locale
            choices: [en, fr, pt-BR]
        """))
    client = create_app(rt).test_client()
    page = client.get("/forms/club").get_data(as_text=True)
    assert '<option value="fr">Français</option>' in page and '<option value="pt_BR">Português' in page
    assert sign_up(client, rt, clock, {}, "club", email="ann@example.com", locale="pt_BR").status_code == 303
    assert contact(rt, "ann@example.com").locale == "pt_BR"
    refused = sign_up(client, rt, clock, {}, "club", email="bob@example.com", locale="de")
    assert refused.status_code == 400 and "Please choose one of: en, fr, pt_BR." in refused.get_data(as_text=True)
    # The starter form has no menu: a French site passes locale=fr hidden, and it wins over the browser.
    english = {"Accept-Language": "en"}
    french_site = sign_up(client, rt, clock, english, email="cleo@example.com", locale="fr-CA")
    assert french_site.status_code == 303 and french_site.headers["Location"].endswith("/thanks?locale=fr_CA")
    assert contact(rt, "cleo@example.com").locale == "fr_CA"
    assert "Merci !" in client.get(french_site.headers["Location"], headers=english).get_data(as_text=True)
    hosted = client.get(f"/forms/{FORM}?locale=fr", headers=english).get_data(as_text=True)
    assert '<input type="hidden" name="locale" value="fr">' in hosted and "(facultatif)" in hosted
    german = client.get(f"/forms/{FORM}?locale=de-AT", headers=english).get_data(as_text=True)
    assert '<input type="hidden" name="locale" value="de_AT">' in german  # carried on for German templates
    assert '<html lang="en">' in german and "(optional)" in german  # nurture's words are not in German


def test_an_import_maps_a_language_column_and_reports_a_bad_tag_with_its_line(
        make_runtime, database_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(database_url)
    path = write_csv(tmp_path, "email,first_name,language\nann@example.com,Ann,fr-CA\nbob@example.com,Bob,xx-zz\n"
                               "cleo@example.com,Cleo,\n")
    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}:3: locale: 'xx-zz' is not a language tag like fr or pt-BR" in result.output
    assert contact(rt, "ann@example.com").locale == "fr_CA" and contact(rt, "cleo@example.com").locale is None


def test_the_api_takes_a_language_and_refuses_a_bad_one(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    rt = make_runtime(sqlite_url)
    client = create_app(rt).test_client()
    auth = {"Authorization": f"Bearer {rt.settings.api_key}"}
    created = client.post("/api/contacts", json={"email": "ann@example.com", "locale": "FR-be"}, headers=auth)
    assert created.status_code == 201 and created.get_json()["locale"] == "fr_BE"
    assert contact(rt, "ann@example.com").locale == "fr_BE"
    bad = client.post("/api/contacts", json={"email": "bob@example.com", "locale": "nope-nope"}, headers=auth)
    assert bad.status_code == 400 and "locale" in bad.get_data(as_text=True)


def test_language_tags_are_normalised_negotiated_and_looked_up_in_order() -> None:
    assert [normalise_locale(t) for t in ("fr", "FR-fr", "pt_br", "zh-Hant-TW")] == ["fr", "fr_FR", "pt_BR",
                                                                                     "zh_Hant_TW"]
    with pytest.raises(InvalidLocale):
        normalise_locale("english please")
    assert negotiate(["fr-CA", "en"], ["en", "fr"]) == "fr" and negotiate(["de"], ["en", "fr"]) is None
    assert lookup_chain("pt_BR", "en") == ("pt_BR", "pt") and lookup_chain("en", "en") == ()
    assert lookup_chain("en_GB", "en") == ("en_GB",) and lookup_chain(None, "en") == ()


def test_a_bad_default_locale_stops_start_up_naming_the_variable(project: Path) -> None:
    with pytest.raises(ConfigError, match="^DEFAULT_LOCALE:"):
        load_settings(worker_env(project, "sqlite://", DEFAULT_LOCALE="not a language"))
    assert load_settings(worker_env(project, "sqlite://", DEFAULT_LOCALE="fr-FR")).default_locale == "fr_FR"


# --- nurture's own words ---------------------------------------------------------------------------------------

def test_every_message_of_the_extracted_catalog_is_translated_in_french(tmp_path: Path) -> None:
    extracted = {m.id for m in extracted_catalog(tmp_path) if m.id}
    french = shipped_catalog("fr")
    untranslated = sorted(str(i) for i in extracted if not (french.get(i) and french.get(i).string))
    assert untranslated == [], "run nurture/translations/update.sh and translate these"
    assert [m.id for m in french if m.id and m.fuzzy] == []
    assert [str(m.id) for m in french if m.id and m.id not in extracted] == []  # nothing stale
    assert [(m.id, errors) for m, errors in french.check()] == []  # placeholders match their msgid


def test_the_compiled_catalog_is_up_to_date_with_its_po(tmp_path: Path) -> None:
    with (TRANSLATIONS_DIR / "fr" / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        compiled = {m.id: m.string for m in read_mo(f) if m.id}
    assert compiled == {m.id: m.string for m in shipped_catalog("fr") if m.id}, \
        "messages.mo is older than messages.po: run nurture/translations/update.sh"
    assert translate("fr", "Reply STOP to opt out.") == "Répondez STOP pour vous désabonner."
    assert translate("fr_CA", "Reply STOP to opt out.") == "Répondez STOP pour vous désabonner."
    assert translate("de", "Reply STOP to opt out.") == "Reply STOP to opt out."


def test_french_sms_replies_stay_in_the_gsm_alphabet() -> None:
    """ê, ç or a non-breaking space would make a reply UCS-2: 70 characters a segment, double the cost."""
    from nurture.rules.sms import ucs2_characters

    sent_as_texts = [m for m in shipped_catalog("fr") if m.id and (
        str(m.id).startswith("%(brand)s: ") or m.id == "Reply STOP to opt out.")]
    assert len(sent_as_texts) == 4
    for message in sent_as_texts:
        assert ucs2_characters(message.string) == [], message.string


def test_a_persons_export_names_its_language_and_erasure_blanks_it(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    from nurture.people import erasure
    from nurture.people.owner_actions import Actor
    from nurture.store.models import Contact
    from tests.helpers import add_contact

    rt = make_runtime(sqlite_url)
    contact_id = add_contact(rt, "ann@example.com", locale="fr")
    with Session(rt.db) as session:
        person = session.get(Contact, contact_id)
        assert erasure.export(session, person)["contact"]["locale"] == "fr"
        erasure.erase(session, person, Actor("owner@example.com", "console"), rt.clock())
        session.commit()
        assert session.get(Contact, contact_id).locale is None


def test_simulate_names_the_template_of_the_contacts_language(project: Path) -> None:
    use_starter_content(project)
    env = worker_env(project, "sqlite://")
    french = CliRunner().invoke(main, ["simulate", "lead-nurture", "--contact", "locale=fr-FR",
                                       "--start", "2026-11-23T09:00:00Z"], env=env)
    assert french.exit_code == 0, french.output
    assert "educate lead/edu-1.fr" in french.output and "offer lead/offer.fr" in french.output
    german = CliRunner().invoke(main, ["simulate", "lead-nurture", "--contact", "locale=de",
                                       "--start", "2026-11-23T09:00:00Z"], env=env)
    assert "educate lead/edu-1\n" in german.output
    bad = CliRunner().invoke(main, ["simulate", "lead-nurture", "--contact", "locale=nope-nope"], env=env)
    assert bad.exit_code == 2 and "locale" in bad.output
