"use strict";
(function () {
  var api = API_PREFIX;
  var csrfCookie = CSRF_COOKIE;
  var signinPage = SIGNIN_PAGE;
  var $ = function (id) { return document.getElementById(id); };
  // PAGE_COMMON (pagecommon.js: csrfToken, call, messages, base64url, passkeys, credentialJSON)

  var labels = { password: "Password", code: "Code", name: "Name" };
  // A wrong code: its field emptied for the next one.
  function retry(field, data) {
    if (data.code) { $(field).value = ""; $(field).focus(); }
  }
  function say(id, text) { $(id).textContent = text || ""; $(id).hidden = !text; }
  function clear() { say("error"); say("notice"); }
  function failed() { say("error", "Network error, try again."); }

  // Signed out meanwhile: to the sign-in page, which comes back here.
  function toSignin() {
    location.assign(signinPage + "?next=" + encodeURIComponent(location.pathname + location.search));
  }
  function answered(r) {
    if (r.status === 403 && r.data.detail === "Authentication credentials were not provided.") { toSignin(); return false; }
    return true;
  }

  // One form open at a time; the buttons that open them hide meanwhile.
  var forms = ["totp-setup-form", "totp-confirm-form", "codes-form", "totp-disable-form", "passkey-form", "passkey-remove-form"];
  var status = null;
  function openForm(id) {
    forms.forEach(function (f) { $(f).hidden = f !== id; });
    render();
    var first = $(id).querySelector("input");
    if (first) { first.focus(); }
  }
  function closeForms() {
    forms.forEach(function (f) { $(f).hidden = true; $(f).reset(); });
    render();
  }
  function formOpen() {
    return forms.some(function (f) { return !$(f).hidden; });
  }

  function render() {
    if (!status) { return; }
    var busy = formOpen() || !$("codes").hidden;
    $("enrol-required").hidden = !status.enrolment_required;
    $("continue").parentNode.hidden = status.enrolment_required;
    $("totp").hidden = false;
    $("totp-status").textContent = status.totp ?
      "On. " + status.recovery_codes + (status.recovery_codes === 1 ? " recovery code" : " recovery codes") + " left." :
      "Off. An app such as Google Authenticator, Aegis or 1Password gives a new 6-digit code every 30 seconds.";
    $("totp-start").hidden = status.totp || busy;
    $("totp-actions").hidden = !status.totp || busy;
    $("passkeys").hidden = false;
    $("passkeys-unsupported").hidden = passkeys;
    $("passkey-start").hidden = !passkeys || busy;
  }

  function fmtDate(s) {
    var d = new Date(s);
    return isNaN(d) ? "" : d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }
  function showPasskeys(list) {
    var ul = $("passkey-list");
    ul.replaceChildren();
    list.forEach(function (pk) {
      var li = document.createElement("li");
      var label = document.createElement("span");
      label.textContent = pk.name || "Passkey";
      var small = document.createElement("small");
      small.textContent = "Added " + fmtDate(pk.created) + (pk.last_used ? " · last used " + fmtDate(pk.last_used) : "");
      label.appendChild(small);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary small";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + (pk.name || "passkey"));
      remove.setAttribute("data-id", pk.id);
      // Removing asks for the password again.
      remove.addEventListener("click", function () {
        clear();
        removing = pk;
        $("passkey-remove-hint").textContent = "Confirm it is you to remove \u201c" + (pk.name || "Passkey") + "\u201d.";
        openForm("passkey-remove-form");
      });
      li.appendChild(label);
      li.appendChild(remove);
      ul.appendChild(li);
    });
    $("passkeys-none").hidden = list.length > 0;
  }

  // load reads what the user has.
  function load() {
    return call("GET", "/2fa/").then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { say("error", messages(r.data)); return; }
      status = r.data;
      render();
      return call("GET", "/2fa/passkeys/").then(function (p) {
        if (p.status === 200) { showPasskeys(p.data); }
      });
    }, failed);
  }

  function showCodes(codes) {
    var ol = $("codes-list");
    ol.replaceChildren();
    codes.forEach(function (c) {
      var li = document.createElement("li");
      li.textContent = c;
      ol.appendChild(li);
    });
    $("codes").hidden = false;
    render();
    $("codes").scrollIntoView();
  }
  $("codes-done").addEventListener("click", function () {
    $("codes-list").replaceChildren();
    $("codes").hidden = true;
    render();
  });

  Array.prototype.forEach.call(document.querySelectorAll("button.cancel"), function (b) {
    b.addEventListener("click", function () { clear(); closeForms(); });
  });

  // TOTP: the password, then the QR code (an SVG document the server
  // drew) and the key, then a code from the app.
  $("totp-start").addEventListener("click", function () { clear(); openForm("totp-setup-form"); });
  $("totp-setup-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    call("POST", "/2fa/totp/setup/", { password: $("totp-setup-password").value }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { say("error", messages(r.data)); return; }
      var qr = $("totp-qr");
      qr.replaceChildren();
      var doc = new DOMParser().parseFromString(r.data.qr_svg || "", "image/svg+xml");
      var svg = doc.documentElement;
      if (svg && svg.namespaceURI === "http://www.w3.org/2000/svg" && svg.localName === "svg" &&
          !doc.querySelector("script, foreignObject, parsererror")) {
        qr.appendChild(document.importNode(svg, true));
      }
      $("totp-secret").textContent = r.data.secret;
      $("totp-setup-form").reset();
      openForm("totp-confirm-form");
    }, failed);
  });
  $("totp-confirm-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    call("POST", "/2fa/totp/confirm/", { code: $("totp-code").value.trim() }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { say("error", messages(r.data)); retry("totp-code", r.data); return; }
      closeForms();
      say("notice", "The authenticator app is on: sign-ins ask for its code.");
      showCodes(r.data.recovery_codes);
      return load();
    }, failed);
  });
  $("codes-start").addEventListener("click", function () { clear(); openForm("codes-form"); });
  $("codes-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    call("POST", "/2fa/recovery-codes/", { password: $("codes-password").value }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { say("error", messages(r.data)); return; }
      closeForms();
      say("notice", "New recovery codes made: the old ones no longer work.");
      showCodes(r.data.recovery_codes);
      return load();
    }, failed);
  });
  $("totp-disable-start").addEventListener("click", function () { clear(); openForm("totp-disable-form"); });
  $("totp-disable-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    call("POST", "/2fa/totp/disable/", { password: $("totp-disable-password").value, code: $("totp-disable-code").value.trim() }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { say("error", messages(r.data)); retry("totp-disable-code", r.data); return; }
      closeForms();
      say("notice", "The authenticator app is off; its recovery codes no longer work.");
      return load();
    }, failed);
  });

  // Passkeys. The options come as JSON with binary fields in base64url;
  // browsers without PublicKeyCredential.parseCreationOptionsFromJSON or
  // credential.toJSON get them converted here.
  function creationOptions(o) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(o);
    }
    return Object.assign({}, o, {
      challenge: fromB64u(o.challenge),
      user: Object.assign({}, o.user, { id: fromB64u(o.user.id) }),
      excludeCredentials: descriptors(o.excludeCredentials)
    });
  }
  $("passkey-start").addEventListener("click", function () { clear(); openForm("passkey-form"); });
  $("passkey-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    var name = $("passkey-name").value.trim();
    call("POST", "/2fa/passkeys/register/begin/", { password: $("passkey-password").value }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 200) { throw new Error(messages(r.data)); }
      return navigator.credentials.create({ publicKey: creationOptions(r.data.publicKey) }).then(function (cred) {
        if (!cred) { throw new Error("No passkey was made."); }
        var body = credentialJSON(cred);
        if (name) { body.name = name; }
        return call("POST", "/2fa/passkeys/register/finish/", body);
      }, function (e) {
        throw new Error(e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." :
          e && e.name === "InvalidStateError" ? "This device already has a passkey for your account." :
          "The passkey could not be made: " + e.message);
      }).then(function (f) {
        if (!answered(f)) { return; }
        if (f.status !== 201) { throw new Error(messages(f.data)); }
        closeForms();
        say("notice", "Passkey \u201c" + f.data.name + "\u201d added: you can sign in with it.");
        return load();
      });
    }).catch(function (e) { say("error", e && e.message ? e.message : "Network error, try again."); });
  });
  var removing = null;
  $("passkey-remove-form").addEventListener("submit", function (e) {
    e.preventDefault();
    clear();
    var pk = removing;
    if (!pk) { closeForms(); return; }
    call("DELETE", "/2fa/passkeys/" + encodeURIComponent(pk.id) + "/", { password: $("passkey-remove-password").value }).then(function (r) {
      if (!answered(r)) { return; }
      if (r.status !== 204) { say("error", messages(r.data)); $("passkey-remove-password").value = ""; return; }
      removing = null;
      closeForms();
      say("notice", "Passkey \u201c" + (pk.name || "Passkey") + "\u201d removed.");
      return load();
    }, failed);
  });

  $("signout").addEventListener("click", function () {
    clear();
    call("POST", "/logout/").then(function (r) {
      var gone = r.status === 403 && r.data.detail === "Authentication credentials were not provided.";
      if (r.status === 200 || gone) { location.assign(signinPage + "#signed-out"); return; }
      say("error", "Not signed out: " + messages(r.data));
    }, failed);
  });

  load();
})();
