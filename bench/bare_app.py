"""The bare endpoint bench/intake.py holds the sign-up form against: plain Flask, served by the same gunicorn
command line as nurture's web app, taking the same POST and answering the same way (303 to a thank-you
page), doing nothing else. What it costs is what gunicorn, Werkzeug and Flask cost per request."""

from __future__ import annotations

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

app = Flask(__name__)


@app.post("/forms/<form_id>")
def submit(form_id: str) -> Response:
    request.form.get("email")  # parse the body, as the real form does
    return redirect(f"/forms/{form_id}/thanks", 303)


@app.get("/forms/<form_id>")
def show(form_id: str) -> str:
    return form_id
