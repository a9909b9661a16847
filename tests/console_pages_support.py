"""What the console's Forms and Suppressions tests share: sign-ups made through the real signup code, a
project with the test forms (one double opt-in, one single opt-in)."""

from __future__ import annotations

import shutil
from pathlib import Path

from nurture.content.forms import FormRegistry
from nurture.people import signup
from nurture.people.submission import Submission
from nurture.runtime import Runtime
from tests.conftest import CONTENT

VISITOR = signup.Visitor(ip="203.0.113.9", user_agent="Mozilla/5.0 TestBrowser")
SINGLE_OPT_IN = """id: quick-list
name: Quick list
sequence: lead-nurture
double_opt_in: false
fields:
  - name: email
consent_text: You agree to get our emails.
"""


def add_forms(project: Path) -> Path:
    """The test content's beginners-guide (double opt-in) and a single opt-in form beside it."""
    shutil.copytree(CONTENT / "forms", project / "forms", dirs_exist_ok=True)
    (project / "forms" / "quick-list.yaml").write_text(SINGLE_OPT_IN, encoding="utf-8")
    return project


def sign_up(rt: Runtime, email: str, form_id: str = "beginners-guide", confirm: bool = False) -> int:
    """A sign-up through the form's own code path (consent record, confirmation), optionally confirmed."""
    forms = FormRegistry(rt.settings.forms_dir)
    result = signup.submit(rt, forms.get(form_id), Submission(email=email), VISITOR)
    if confirm:
        signup.confirm(rt, forms, result.contact_id, VISITOR)
    return result.contact_id
