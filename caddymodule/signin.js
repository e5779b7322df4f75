"use strict";
(function () {
  var api = API_PREFIX;
  var csrfCookie = CSRF_COOKIE;
  var accountPage = ACCOUNT_PAGE;
  var $ = function (id) { return document.getElementById(id); };
  // With `registration closed` the page has no registration form.
  var canRegister = document.querySelector("main").getAttribute("data-registration") === "open";
  // With smtp: password reset and e-mail verification.
  var hasMail = document.querySelector("main").getAttribute("data-mail") === "on";
  var resetUID = "", resetToken = "";

  // next must be a same-site relative path: "/x", never "//host", "/\host"
  // or "scheme:", nor one of the API's paths but the account page, so the
  // page cannot be used as an open redirect.
  function safeNext() {
    var next = new URLSearchParams(location.search).get("next") || "/";
    var account = next === accountPage || next.indexOf(accountPage + "?") === 0;
    if (next.charAt(0) !== "/" || next.charAt(1) === "/" || next.charAt(1) === "\\" ||
        /[\u0000-\u001f\u007f]/.test(next) || (next.indexOf(api + "/") === 0 && !account)) {
      return "/";
    }
    return next;
  }
  // The account page, which comes back to next.
  function accountURL() {
    var next = safeNext();
    return accountPage + (next === "/" || next.indexOf(accountPage) === 0 ? "" : "?next=" + encodeURIComponent(next));
  }

  // PAGE_COMMON (pagecommon.js: csrfToken, call, messages, base64url, passkeys, credentialJSON)

  // Field names in messages().
  var labels = { username: "Username", email: "Email", password: "Password", password2: "Password (again)", new_password: "New password" };

  var titles = { "register-form": "Create an account", "signed-in": "Signed in", "reset-form": "Reset your password",
    "reset-confirm-form": "Choose a new password", "mfa-form": "Two-step verification" };
  function show(view) {
    ["signed-in", "signin-form", "mfa-form", "register-form", "reset-form", "reset-confirm-form"].forEach(function (id) {
      if ($(id)) { $(id).hidden = id !== view; }
    });
    $("title").textContent = titles[view] || "Sign in";
  }
  function say(id, text) { $(id).textContent = text || ""; $(id).hidden = !text; }

  function signedIn(user) {
    $("who").textContent = user.username;
    $("continue").setAttribute("href", safeNext());
    $("account-link").setAttribute("href", accountURL());
    show("signed-in");
  }

  // A login's answer (200): the second step, the account page to add a
  // second factor (two_factor required), or next.
  function loggedIn(data) {
    if (data.mfa_required) { secondStep(data.methods || []); return; }
    location.assign(data.mfa_enrolment_required ? accountURL() : safeNext());
  }

  // The options come as JSON with binary fields in base64url; browsers
  // without PublicKeyCredential.parseRequestOptionsFromJSON get them
  // decoded here.
  function requestOptions(o) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(o);
    }
    return Object.assign({}, o, { challenge: fromB64u(o.challenge), allowCredentials: descriptors(o.allowCredentials) });
  }

  // A passkey sign-in: after the password (the pending login's cookie
  // names the user), or, discoverable, without one (any passkey of this
  // site, whatever password step was left unfinished).
  function passkeySignIn(discoverable) {
    say("error"); say("notice");
    call("POST", "/login/passkey/begin/", discoverable === true ? { discoverable: true } : undefined).then(function (r) {
      if (r.status !== 200) { throw new Error(messages(r.data)); }
      return navigator.credentials.get({ publicKey: requestOptions(r.data.publicKey) }).then(function (cred) {
        if (!cred) { throw new Error("No passkey was chosen."); }
        return call("POST", "/login/passkey/finish/", credentialJSON(cred));
      }, function (e) {
        throw new Error(e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : "The passkey did not work: " + e.message);
      });
    }).then(function (r) {
      if (r.status === 200) { loggedIn(r.data); return; }
      say("error", messages(r.data));
    }).catch(function (e) { say("error", e && e.message ? e.message : "Network error, try again."); });
  }

  // The second step: a code (TOTP or recovery), or a passkey.
  function secondStep(methods) {
    var code = methods.indexOf("totp") >= 0 || methods.indexOf("recovery_code") >= 0;
    var pk = methods.indexOf("passkey") >= 0 && passkeys;
    $("mfa-code-part").hidden = !code;
    $("mfa-code").required = code;
    $("mfa-hint").textContent = methods.indexOf("totp") >= 0 ?
      "Enter the 6-digit code from your authenticator app, or one of your recovery codes." :
      "Enter one of your recovery codes.";
    $("mfa-passkey-part").hidden = !pk;
    $("mfa-passkey-or").hidden = !code;
    $("mfa-passkey-hint").hidden = code;
    $("mfa-passkey").className = code ? "secondary" : "";
    $("mfa-code").value = "";
    show("mfa-form");
    if (!code && !pk) {
      say("error", "Your second factor is a passkey, which this browser cannot use here.");
    }
    if (code) { $("mfa-code").focus(); }
  }

  $("signin-form").addEventListener("submit", function (e) {
    e.preventDefault();
    say("error"); say("notice");
    call("POST", "/login/", { username: $("signin-username").value, password: $("signin-password").value })
      .then(function (r) {
        if (r.status === 200) { loggedIn(r.data); return; }
        say("error", messages(r.data));
      }, function () { say("error", "Network error, try again."); });
  });

  $("mfa-form").addEventListener("submit", function (e) {
    e.preventDefault();
    say("error"); say("notice");
    call("POST", "/login/2fa/", { code: $("mfa-code").value.trim() }).then(function (r) {
      if (r.status === 200) { loggedIn(r.data); return; }
      if (r.data.code) {
        $("mfa-code").value = "";
        $("mfa-code").focus();
      } else {
        // The pending login expired (or a throttle): sign in again.
        show("signin-form");
        $("signin-password").value = "";
      }
      say("error", messages(r.data));
    }, function () { say("error", "Network error, try again."); });
  });
  $("mfa-passkey").addEventListener("click", function () { passkeySignIn(false); });
  $("mfa-back").addEventListener("click", function (e) {
    e.preventDefault(); say("error"); say("notice");
    $("signin-password").value = "";
    show("signin-form");
  });
  if (passkeys) {
    $("passkey-signin-part").hidden = false;
    $("passkey-signin").addEventListener("click", function () { passkeySignIn(true); });
  }

  if (canRegister) {
    $("register-form").addEventListener("submit", function (e) {
      e.preventDefault();
      say("error"); say("notice");
      var username = $("register-username").value;
      call("POST", "/register/", {
        username: username, email: $("register-email").value,
        password: $("register-password").value, password2: $("register-password2").value
      }).then(function (r) {
        if (r.status !== 201) { say("error", messages(r.data)); return; }
        // Signed up: sign in with the password just typed, then go on.
        var name = r.data.username || username;
        return call("POST", "/login/", { username: name, password: $("register-password").value }).then(function (l) {
          if (l.status === 200) { loggedIn(l.data); return; }
          $("signin-username").value = name;
          show("signin-form");
          say("notice", "Account created. Sign in to continue.");
          if (l.status !== 400) { say("error", messages(l.data)); }
        });
      }).catch(function () { say("error", "Network error, try again."); });
    });
  }

  $("signout").addEventListener("click", function () {
    say("error"); say("notice");
    call("POST", "/logout/").then(function (r) {
      var gone = r.status === 403 && r.data.detail === "Authentication credentials were not provided.";
      if (r.status === 200 || gone) { show("signin-form"); say("notice", "Signed out."); return; }
      // Anything else (a CSRF failure, a store outage) leaves the session
      // alive: say so rather than pretend.
      say("error", "Not signed out: " + messages(r.data));
    });
  });

  if (canRegister) {
    $("show-register").addEventListener("click", function (e) { e.preventDefault(); say("error"); say("notice"); show("register-form"); });
    $("show-signin").addEventListener("click", function (e) { e.preventDefault(); say("error"); say("notice"); show("signin-form"); });
  }

  if (hasMail) {
    $("show-reset").addEventListener("click", function (e) { e.preventDefault(); say("error"); say("notice"); show("reset-form"); });
    $("reset-back").addEventListener("click", function (e) { e.preventDefault(); say("error"); say("notice"); show("signin-form"); });
    $("reset-form").addEventListener("submit", function (e) {
      e.preventDefault();
      say("error"); say("notice");
      call("POST", "/password/reset/", { email: $("reset-email").value }).then(function (r) {
        if (r.status === 200) {
          show("signin-form");
          say("notice", "If an account uses that address, a link to reset its password is on its way.");
          return;
        }
        say("error", messages(r.data));
      }, function () { say("error", "Network error, try again."); });
    });
    $("reset-confirm-form").addEventListener("submit", function (e) {
      e.preventDefault();
      say("error"); say("notice");
      call("POST", "/password/reset/confirm/", {
        uid: resetUID, token: resetToken,
        new_password1: $("reset-password1").value, new_password2: $("reset-password2").value
      }).then(function (r) {
        if (r.status === 200) {
          show("signin-form");
          say("notice", "Your password has been reset. Sign in with the new one.");
          $("signin-username").focus();
          return;
        }
        if (r.data.token || r.data.uid) {
          say("error", "This reset link is invalid or has expired: ask for a new one.");
          return;
        }
        say("error", messages(r.data));
      }, function () { say("error", "Network error, try again."); });
    });
  }

  // The links of reset and verification mails carry their secret in the
  // fragment; it is read once and dropped from the address bar.
  var hash = location.hash.replace(/^#/, "");
  var parts = hash.split("/");
  if (hasMail && parts[0] === "reset-confirm" && parts.length === 3) {
    resetUID = parts[1]; resetToken = parts[2];
    history.replaceState(null, "", location.pathname + location.search);
    show("reset-confirm-form");
    return;
  }
  if (hasMail && parts[0] === "verify" && parts.length === 2) {
    history.replaceState(null, "", location.pathname + location.search);
    call("POST", "/registration/verify-email/", { key: parts[1] }).then(function (r) {
      show("signin-form");
      if (r.status === 200) { say("notice", "Your e-mail address is verified. Sign in to continue."); return; }
      say("error", "This verification link is invalid or has expired.");
    }, function () { show("signin-form"); say("error", "Network error, try again."); });
    return;
  }
  if (hasMail && hash === "reset") { show("reset-form"); return; }
  if (hash === "signed-out") {
    history.replaceState(null, "", location.pathname + location.search);
    say("notice", "Signed out.");
  }

  // A page re-rendered after a form post keeps its view and errors.
  var start = canRegister && ($("register-form").hidden === false || location.hash === "#register-form") ? "register-form" : "signin-form";
  if ($("mfa-form").hidden === false) {
    // The code form after a form post: the passkey too, if it can.
    $("mfa-passkey-part").hidden = !passkeys;
    return;
  }
  call("GET", "/user/").then(function (r) {
    if (r.status !== 200) { show(start); return; }
    // A session that may only add a second factor (two_factor required)
    // is led to the account page to add one.
    return call("GET", "/2fa/").then(function (f) {
      if (f.status === 200 && f.data.enrolment_required) { location.replace(accountURL()); return; }
      signedIn(r.data);
    });
  }).catch(function () { show(start); });
})();
