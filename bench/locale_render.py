"""The cost of a contact's language on the render path: the same email rendered for the default language, a
language with its own template, one with none (two variants looked for and missed), and the walk of the
template folders a sign-up's language negotiation makes (at most once a minute). Run from the repository root:
.venv/bin/python bench/locale_render.py"""
import time
from pathlib import Path

from nurture.content.rendering import TemplateCatalog, make_environment
from nurture.content.template_locales import template_locales
from nurture.content.views import BrandView, ContactView, SequenceView, StepView

root = Path(__file__).resolve().parent.parent
cat = TemplateCatalog(make_environment(root / "email_templates"))
ctx = {"contact": ContactView("Ann", "", "a@x", None, None, "lead", (), {}), "brand": BrandView("J", "h@x", "https://x"),
       "postal_address": "1", "unsubscribe_url": "u", "preferences_url": "p", "confirm_url": "", "referral_url": "",
       "rating_links": [], "sequence": SequenceView("s", "S"), "step": StepView("e", "educate")}
for name, chain, tpl in (("default", (), "lead/edu-1"), ("fr (found)", ("fr",), "lead/edu-1"),
                         ("de_AT (2 misses)", ("de_AT", "de"), "lead/edu-1"),
                         ("fr, no French thank-you", ("fr",), "customer/thank-you")):
    cat.render_email(tpl, "S", ctx, chain)
    n, best = 500, 1e9
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(n):
            cat.render_email(tpl, "S", ctx, chain)
        best = min(best, (time.perf_counter() - t) / n)
    print(f"{name:30s} {1e3*best:.3f} ms/render (best of 7)")
t = time.perf_counter()
for _ in range(100):
    template_locales(root / "email_templates", root / "sms_templates")
print(f"template_locales walk: {1e3*(time.perf_counter()-t)/100:.2f} ms")
