"""`nurture forms ...`: list the signup forms, print their embed snippets."""

from __future__ import annotations

import click

from nurture.cli.common import fail, with_runtime
from nurture.content.forms import FormRegistry
from nurture.runtime import Runtime


@click.group("forms")
def forms_group() -> None:
    """Signup forms (forms/*.yaml): list them, print their embed snippets."""


@forms_group.command("list")
@with_runtime
def forms_list(rt: Runtime) -> None:
    """Every form, its sequence and its hosted page."""
    found = FormRegistry(rt.settings.forms_dir).all()
    if not found:
        click.echo(f"no forms in {rt.settings.forms_dir}")
    for form in found:
        opt_in = "double opt-in" if form.double_opt_in else "single opt-in"
        click.echo(f"{form.id}\t{form.name}\t-> {form.sequence} ({opt_in})\t{rt.settings.base_url}/forms/{form.id}")


@forms_group.command("snippet")
@click.argument("form_id")
@with_runtime
def forms_snippet(rt: Runtime, form_id: str) -> None:
    """Print the three ways to embed FORM_ID: plain HTML, one-line script, hosted page link."""
    from nurture.web.forms import snippets  # the web app's templates render the HTML snippet

    form = FormRegistry(rt.settings.forms_dir).get(form_id)
    if form is None:
        known = ", ".join(f.id for f in FormRegistry(rt.settings.forms_dir).all()) or "none"
        fail(f"unknown form {form_id!r} (known: {known})")
    for title, text in snippets(rt, form).items():
        click.echo(f"<!-- ===== {title} ===== -->\n{text.strip()}\n")
