/* nurture: the one-line script embed. /forms/<id>/embed.js wraps this file and calls
 * nurtureEmbed(config, document.currentScript): the form is drawn where the <script> tag is (or into the
 * element named by its data-target attribute) and sent with fetch, so the visitor never leaves the page.
 * Everything shown is set with textContent, never innerHTML: labels and messages cannot inject markup. */
function nurtureEmbed(config, script) {
  "use strict";
  var doc = document;

  function el(tag, attrs, text) {
    var node = doc.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text) { node.textContent = text; }
    return node;
  }

  function addStyle() {
    if (doc.getElementById("nurture-embed-css")) { return; }
    var css = el("style", { id: "nurture-embed-css" });
    css.textContent = [
      ".nf-embed{max-width:480px;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#3a332d}",
      ".nf-embed *{box-sizing:border-box}",
      ".nf-embed h2{margin:0 0 8px;font-size:22px}",
      ".nf-embed .nf-field{margin:0 0 14px}",
      ".nf-embed label{display:block;margin:0 0 6px;font-weight:600}",
      ".nf-embed .nf-check{display:flex;gap:10px;font-weight:400}",
      ".nf-embed input[type=text],.nf-embed input[type=email],.nf-embed input[type=tel],",
      ".nf-embed input[type=date],.nf-embed select{width:100%;min-height:44px;padding:8px 10px;",
      "font-size:16px;border:1px solid #cfc5bb;border-radius:8px}",
      ".nf-embed .nf-invalid input,.nf-embed .nf-invalid select{border-color:#b3261e}",
      ".nf-embed .nf-error{margin:6px 0 0;color:#b3261e;font-size:15px}",
      ".nf-embed .nf-submit{width:100%;min-height:48px;border:0;border-radius:8px;background:#c46a44;",
      "color:#fff;font-size:17px;font-weight:600;cursor:pointer}",
      ".nf-embed .nf-submit[disabled]{opacity:.6}",
      ".nf-embed .nf-consent{font-size:13px;color:#7d7268}",
      ".nf-embed .nf-hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}"
    ].join("");
    doc.head.appendChild(css);
  }

  function input(field, id) {
    if (field.type === "choice") {
      var select = el("select", { id: id, name: field.name });
      select.appendChild(el("option", { value: "" }, "Choose…"));
      field.choices.forEach(function (choice) { select.appendChild(el("option", { value: choice }, choice)); });
      return select;
    }
    var types = { email: "email", tel: "tel", date: "date", checkbox: "checkbox" };
    var node = el("input", { id: id, name: field.name, type: types[field.type] || "text" });
    if (field.type === "checkbox") { node.value = "on"; }
    if (field.placeholder) { node.setAttribute("placeholder", field.placeholder); }
    if (field.type === "email") { node.setAttribute("autocomplete", "email"); }
    if (field.type === "tel") { node.setAttribute("autocomplete", "tel"); }
    if (field.required) { node.required = true; }
    return node;
  }

  function fieldBox(field) {
    var id = "nf-" + config.id + "-" + field.name;
    var box = el("div", { "class": "nf-field", "data-field": field.name });
    var control = input(field, id);
    if (field.type === "checkbox") {
      var check = el("label", { "class": "nf-check" });
      check.appendChild(control);
      check.appendChild(doc.createTextNode(" " + field.label));
      box.appendChild(check);
    } else {
      box.appendChild(el("label", { "for": id }, field.label + (field.required ? "" : " (optional)")));
      box.appendChild(control);
    }
    return box;
  }

  function hidden(form, name, value) {
    if (value) { form.appendChild(el("input", { type: "hidden", name: name, value: value })); }
  }

  // Source, UTM tags and referral code come from the host page's own address; the hidden fields carry them.
  function addAttribution(form) {
    var params = new URLSearchParams(window.location.search);
    config.attribution.forEach(function (key) { hidden(form, key, params.get(key)); });
    hidden(form, "landing_page", params.get("landing_page") || window.location.href);
    hidden(form, "referrer", doc.referrer);
    var tz = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    hidden(form, "timezone", tz);
  }

  function build() {
    var form = el("form", { "class": "nf-form", method: "post", action: config.action, novalidate: "" });
    if (config.title) { form.appendChild(el("h2", {}, config.title)); }
    if (config.intro) { form.appendChild(el("p", {}, config.intro)); }
    form.appendChild(el("p", { "class": "nf-error nf-form-error", role: "alert", hidden: "" }));
    config.fields.forEach(function (field) { form.appendChild(fieldBox(field)); });
    if (config.sms_consent_text) {
      form.appendChild(fieldBox({ name: "sms_consent", label: config.sms_consent_text, type: "checkbox" }));
    }
    if (config.consent_checkbox) {
      form.appendChild(fieldBox({ name: "consent", label: config.consent_text, type: "checkbox", required: true }));
    }
    var trap = el("div", { "class": "nf-hp", "aria-hidden": "true" });
    trap.appendChild(el("input", { type: "text", name: config.honeypot, tabindex: "-1", autocomplete: "off" }));
    form.appendChild(trap);
    form.appendChild(el("input", { type: "hidden", name: "_started", value: config.started }));
    addAttribution(form);
    form.appendChild(el("button", { type: "submit", "class": "nf-submit" }, config.submit_label));
    if (!config.consent_checkbox) { form.appendChild(el("p", { "class": "nf-consent" }, config.consent_text)); }
    return form;
  }

  function showErrors(form, body) {
    var errors = body.errors || {};
    var top = form.querySelector(".nf-form-error");
    Array.prototype.forEach.call(form.querySelectorAll(".nf-field"), function (box) {
      var old = box.querySelector(".nf-error");
      if (old) { box.removeChild(old); }
      var message = errors[box.getAttribute("data-field")];
      box.className = message ? "nf-field nf-invalid" : "nf-field";
      if (message) { box.appendChild(el("p", { "class": "nf-error" }, message)); }
    });
    top.textContent = errors._form || body.message || "Please check the highlighted fields.";
    top.hidden = false;
    if (body.started) { form.elements._started.value = body.started; }
  }

  function submit(form, event) {
    event.preventDefault();
    var button = form.querySelector(".nf-submit");
    button.disabled = true;
    fetch(config.action, {
      method: "POST", body: new FormData(form), headers: { Accept: "application/json" },
      mode: "cors", credentials: "omit"
    }).then(function (response) {
      return response.json().catch(function () { return { ok: false, message: "Something went wrong." }; });
    }).then(function (body) {
      if (body.ok) {
        var done = el("p", { "class": "nf-status", role: "status" }, body.message);
        form.parentNode.replaceChild(done, form);
      } else {
        showErrors(form, body);
      }
    }).catch(function () {
      showErrors(form, { message: "We couldn't reach the server. Please check your connection and try again." });
    }).then(function () { button.disabled = false; });
  }

  addStyle();
  var target = script && script.getAttribute("data-target");
  var mount = target ? doc.querySelector(target) : null;
  var box = el("div", { "class": "nf-embed", "data-nurture-form": config.id });
  var form = build();
  form.addEventListener("submit", function (event) { submit(form, event); });
  box.appendChild(form);
  if (mount) {
    mount.appendChild(box);
  } else if (script && script.parentNode) {
    script.parentNode.insertBefore(box, script);
  } else {
    doc.body.appendChild(box);
  }
}
