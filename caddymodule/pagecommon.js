  // pagecommon.js: the helpers the sign-in and account pages share,
  // inserted into each page's script (it defines api, csrfCookie and the
  // field labels messages() uses).

  function csrfToken() {
    var parts = document.cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].trim().split("=");
      if (kv[0] === csrfCookie) { return decodeURIComponent(kv.slice(1).join("=")); }
    }
    return "";
  }

  function call(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (body) { headers["Content-Type"] = "application/json"; }
    var token = csrfToken();
    if (token) { headers["X-CSRFToken"] = token; }
    return fetch(api + path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.text().then(function (t) {
        var data = {};
        try { data = t ? JSON.parse(t) : {}; } catch (e) { data = { detail: "Unexpected response." }; }
        return { status: r.status, data: data };
      });
    });
  }

  // DRF errors in words: {"username": ["A user with that username already
  // exists."]} reads "Username: a user with that username already exists."
  function lowerFirst(m) {
    return /^[A-Z][^A-Z]/.test(m) ? m.charAt(0).toLowerCase() + m.slice(1) : m;
  }
  function messages(data) {
    var out = [];
    Object.keys(data).forEach(function (k) {
      var v = data[k];
      var list = Array.isArray(v) ? v : [String(v)];
      list.forEach(function (m) {
        if (k === "detail" || k === "non_field_errors") { out.push(m); return; }
        var label = labels[k] || (k.charAt(0).toUpperCase() + k.slice(1).replace(/_/g, " "));
        out.push(label + ": " + lowerFirst(m));
      });
    });
    return out.join("\n") || "Something went wrong; try again.";
  }

  // WebAuthn's binary fields travel as base64url (for browsers without
  // PublicKeyCredential's JSON helpers).
  function fromB64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function toB64u(buf) {
    if (!buf) { return null; }
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Passkeys need WebAuthn in the browser and a site on a name (WebAuthn
  // has no relying party on an IP address).
  var passkeys = !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.get && navigator.credentials.create) &&
    !/^[0-9.]+$|:/.test(location.hostname);
  // A list of credential descriptors (allow or exclude) with ids decoded.
  function descriptors(list) {
    return list && list.map(function (c) { return Object.assign({}, c, { id: fromB64u(c.id) }); });
  }
  // A PublicKeyCredential as JSON: its toJSON(), or the same by hand (an
  // assertion's response or a registration's).
  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") { return cred.toJSON(); }
    var r = cred.response, response = { clientDataJSON: toB64u(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64u(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : undefined;
    } else {
      response.authenticatorData = toB64u(r.authenticatorData);
      response.signature = toB64u(r.signature);
      response.userHandle = toB64u(r.userHandle) || undefined;
    }
    return {
      id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: response
    };
  }
