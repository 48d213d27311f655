// fieldid offline-safe capture queue.
//
// A captured photo is held in this browser only until the server acknowledges it:
// - encrypted (AES-GCM, 256 bits) under a key made here with WebCrypto as NON-EXTRACTABLE: the
//   key can encrypt and decrypt in this browser but its bytes cannot be read out, not even by
//   this script. Key and captures live in IndexedDB ("fieldid-queue"); logging out (or any page
//   shown without a login) deletes the whole database, key included;
// - sent with an Idempotency-Key (the capture's id), so a retry after a lost answer runs no
//   second search: the server answers with the first request's search;
// - retried with backoff while there is no signal ("Waiting for signal, will send"), with
//   "Still trying / Cancel" when an answer is slow; Cancel wipes the capture;
// - wiped after the configured limit (15 minutes by default) if it could not be sent; the wipe
//   is told to the officer, and to the server's audit log, at the next contact.
// Every page loads this file, so a capture waiting for signal keeps trying after navigation.
(function () {
  "use strict";
  var DB = "fieldid-queue", VERSION = 1, BACKOFF_S = [1, 2, 4, 8, 15, 30];
  var body = document.body;
  var operator = body ? body.getAttribute("data-operator") || "" : "";
  var csrf = body ? body.getAttribute("data-csrf") || "" : "";
  var loggedOut = body && body.hasAttribute("data-logged-out");
  var handler = null;          // the capture page's answer handler (else the panel links)
  var current = null;          // {id, ctrl} of the request in flight
  var timer = null, running = false, panel = null;

  function idb() {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open(DB, VERSION);
      open.onupgradeneeded = function () {
        var db = open.result;
        db.createObjectStore("keys");
        db.createObjectStore("captures", { keyPath: "id" });
        db.createObjectStore("notes", { keyPath: "id" });
      };
      open.onsuccess = function () { resolve(open.result); };
      open.onerror = function () { reject(open.error); };
    });
  }

  function tx(store, mode, fn) {
    return idb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(store, mode);
        var result;
        Promise.resolve(fn(t.objectStore(store))).then(function (r) { result = r; });
        t.oncomplete = function () { db.close(); resolve(result); };
        t.onerror = t.onabort = function () { db.close(); reject(t.error); };
      });
    });
  }

  function req(r) {
    return new Promise(function (resolve, reject) {
      r.onsuccess = function () { resolve(r.result); };
      r.onerror = function () { reject(r.error); };
    });
  }

  function all(store) { return tx(store, "readonly", function (s) { return req(s.getAll()); }); }
  function put(store, value) { return tx(store, "readwrite", function (s) { s.put(value); }); }
  function del(store, id) { return tx(store, "readwrite", function (s) { s.delete(id); }); }

  function wipeAll() {
    keyPromise = null;
    return new Promise(function (resolve) {
      var r = indexedDB.deleteDatabase(DB);
      r.onsuccess = r.onerror = r.onblocked = function () { resolve(); };
    });
  }

  function clearAll() {
    return idb().then(function (db) {
      return new Promise(function (resolve) {
        var t = db.transaction(["keys", "captures", "notes"], "readwrite");
        ["keys", "captures", "notes"].forEach(function (n) { t.objectStore(n).clear(); });
        t.oncomplete = t.onerror = t.onabort = function () { db.close(); resolve(); };
      });
    });
  }

  // The key: made once per login on this phone, never extractable, bound to the operator (a
  // different operator on the same phone finds nothing of the previous one's).
  var keyPromise = null;
  function key() {
    if (keyPromise) { return keyPromise; }
    keyPromise = tx("keys", "readonly", function (s) { return req(s.get("k")); }).then(function (k) {
      if (k && k.operator === operator) { return k.key; }
      return (k ? clearAll() : Promise.resolve()).then(function () {
        return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      }).then(function (created) {
        return tx("keys", "readwrite", function (s) { s.put({ operator: operator, key: created }, "k"); })
          .then(function () { return created; });
      });
    });
    keyPromise.catch(function () { keyPromise = null; });
    return keyPromise;
  }

  function seal(obj, bytes) {
    var meta = new TextEncoder().encode(JSON.stringify(obj));
    var plain = new Uint8Array(4 + meta.length + (bytes ? bytes.byteLength : 0));
    new DataView(plain.buffer).setUint32(0, meta.length);
    plain.set(meta, 4);
    if (bytes) { plain.set(new Uint8Array(bytes), 4 + meta.length); }
    var iv = crypto.getRandomValues(new Uint8Array(12));
    return key().then(function (k) {
      return crypto.subtle.encrypt({ name: "AES-GCM", iv: iv }, k, plain);
    }).then(function (data) { return { iv: iv, data: data }; });
  }

  function open(sealed) {
    return key().then(function (k) {
      return crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.iv }, k, sealed.data);
    }).then(function (plain) {
      var n = new DataView(plain).getUint32(0);
      var meta = JSON.parse(new TextDecoder().decode(new Uint8Array(plain, 4, n)));
      return { meta: meta, bytes: plain.slice(4 + n) };
    });
  }

  function newId() {
    if (crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function clock(ms) {
    var d = new Date(ms);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // --- the panel: what the officer sees of the queue --------------------------------------

  function ui(state, text, opts) {
    opts = opts || {};
    if (!panel) {
      panel = document.getElementById("send-panel");
      if (!panel) {
        panel = document.createElement("section");
        panel.id = "send-panel";
        panel.className = "send-panel floating";
        (document.querySelector("main") || document.body).appendChild(panel);
      }
      panel.setAttribute("data-testid", "send-status");
      panel.setAttribute("role", "status");
      panel.setAttribute("aria-live", "polite");
    }
    panel.hidden = false;
    panel.dataset.state = state;
    panel.textContent = "";
    var p = document.createElement("p");
    p.className = "send-text";
    var strong = document.createElement("strong");
    strong.textContent = text;
    p.appendChild(strong);
    if (opts.detail) {
      var small = document.createElement("span");
      small.className = "muted small send-detail";
      small.textContent = " " + opts.detail;
      p.appendChild(small);
    }
    panel.appendChild(p);
    var row = document.createElement("div");
    row.className = "actions";
    (opts.buttons || []).forEach(function (b) {
      var el = document.createElement(b.href ? "a" : "button");
      el.className = "button" + (b.primary ? " primary" : "");
      el.textContent = b.text;
      el.setAttribute("data-testid", b.testid);
      if (b.href) { el.href = b.href; } else { el.type = "button"; el.addEventListener("click", b.click); }
      row.appendChild(el);
    });
    if (row.childNodes.length) { panel.appendChild(row); }
  }

  function hidePanel() { if (panel) { panel.hidden = true; panel.dataset.state = "idle"; } }

  function cancelButton(id) {
    return { text: "Cancel", testid: "send-cancel", click: function () { cancel(id); } };
  }

  // --- sending ------------------------------------------------------------------------------

  function limitMinutes(e) { return Math.round((e.expires - e.created) / 60000); }

  function schedule(seconds) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () { timer = null; run(); }, seconds * 1000);
  }

  function expire(e) {
    // Wiped unsent; the note (purpose and case only, sealed) goes to the audit at next contact.
    return open(e).then(function (o) {
      return seal({
        captured_at: new Date(e.created).toISOString(),
        wiped_at: new Date().toISOString(),
        purpose: o.meta.fields.purpose || "",
        case_ref: o.meta.fields.case_ref || "",
        maybe_sent: !!e.maybeSent
      });
    }).catch(function () { return null; }).then(function (note) {
      return del("captures", e.id).then(function () {
        if (note) { return put("notes", { id: e.id, iv: note.iv, data: note.data, told: false }); }
      });
    }).then(function () {
      ui("expired", "Not sent: the photo taken at " + clock(e.created) + " waited " + limitMinutes(e) +
        " minutes without signal and was wiped from this phone.", {
        detail: e.maybeSent ? "An earlier try may have reached the server: see My searches." :
          "It was never searched. Take the photo again when there is signal.",
        buttons: [{ text: "OK", testid: "send-ok", click: hidePanel }]
      });
      if (handler && handler.cancelled) { handler.cancelled(); }
      return tellNotes();
    });
  }

  function answered(e, status, json) {
    return del("captures", e.id).then(function () {
      current = null;
      // The page that asked handles the answer (and says what happened): the panel's
      // "Sending…" is over.
      if (handler) { hidePanel(); return handler(status, json); }
      if (status === 201 || status === 200) {
        ui("sent", "Sent: the search ran.", {
          buttons: [{ text: "See the results", testid: "send-results", href: json.links.page, primary: true }]
        });
      } else {
        var link = json.search_id ? [{ text: "See why", testid: "send-results", href: "/results/" + json.search_id }] : [];
        ui("refused", json.detail || "The search was refused.", { buttons: link });
      }
    });
  }

  function attempt(e) {
    if (Date.now() > e.expires) { return expire(e); }
    if (!navigator.onLine) {
      ui("waiting", "Waiting for signal, will send.", {
        detail: "The photo is held encrypted on this phone until " + clock(e.expires) + ", then wiped.",
        buttons: [cancelButton(e.id)]
      });
      schedule(5);
      return Promise.resolve();
    }
    return open(e).then(function (o) {
      var form = new FormData();
      form.append("image", new Blob([o.bytes], { type: "image/jpeg" }), "capture.jpg");
      Object.keys(o.meta.fields).forEach(function (k) { form.append(k, o.meta.fields[k]); });
      var ctrl = new AbortController();
      current = { id: e.id, ctrl: ctrl };
      var timeoutS = o.meta.sendTimeoutS || 30;
      var still = setTimeout(function () {
        ui("still", "Still trying to send…", { detail: "No answer yet.", buttons: [cancelButton(e.id)] });
      }, Math.min(8, timeoutS / 2) * 1000);
      var abort = setTimeout(function () { ctrl.abort(); }, timeoutS * 1000);
      ui("sending", e.attempts ? "Sending again…" : "Sending the photo…", { buttons: [cancelButton(e.id)] });
      e.attempts += 1;
      e.maybeSent = true;
      return put("captures", e).then(function () {
        return fetch(o.meta.endpoint, {
          method: "POST", body: form, credentials: "same-origin", signal: ctrl.signal,
          headers: { "X-CSRF-Token": o.meta.csrf, "Accept": "application/json", "Idempotency-Key": e.id }
        });
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) { return [r.status, j]; });
      }).then(function (res) {
        clearTimeout(still); clearTimeout(abort);
        var s = res[0];
        if (s === 401) { return wipeAll().then(function () { window.location = "/login"; }); }
        if (s >= 500 || s === 408 || s === 429) { throw new Error("transient " + s); }
        return answered(e, s, res[1]);
      }, function (err) { clearTimeout(still); clearTimeout(abort); throw err; });
    }).catch(function () {
      // No answer (no signal, timed out, server busy): keep it, sealed, and try again later.
      if (!current || current.id !== e.id) { return; }  // cancelled meanwhile
      current = null;
      var wait = BACKOFF_S[Math.min(e.attempts - 1, BACKOFF_S.length - 1)] * (0.8 + 0.4 * Math.random());
      wait = Math.max(0.5, Math.min(wait, (e.expires - Date.now()) / 1000 + 0.2));
      ui("waiting", "Waiting for signal, will send.", {
        detail: "Next try in " + Math.ceil(wait) + " s. The photo is held encrypted on this phone until " +
          clock(e.expires) + ", then wiped.",
        buttons: [cancelButton(e.id)]
      });
      schedule(wait);
    });
  }

  function run() {
    if (running || loggedOut || !window.indexedDB || !window.crypto || !crypto.subtle) { return Promise.resolve(); }
    running = true;
    if (timer) { clearTimeout(timer); timer = null; }
    return all("captures").then(function (list) {
      list = list.filter(function (e) { return e.operator === operator; })
        .sort(function (a, b) { return a.created - b.created; });
      var expired = list.filter(function (e) { return Date.now() > e.expires; });
      var chain = Promise.resolve();
      expired.forEach(function (e) { chain = chain.then(function () { return expire(e); }); });
      var next = list.filter(function (e) { return Date.now() <= e.expires; })[0];
      return chain.then(function () { if (next && !current) { return attempt(next); } });
    }).catch(function () {}).then(function () { running = false; });
  }

  function cancel(id) {
    if (current && current.id === id) { current.ctrl.abort(); current = null; }
    if (timer) { clearTimeout(timer); timer = null; }
    return all("captures").then(function (list) {
      var e = list.filter(function (x) { return x.id === id; })[0];
      return del("captures", id).then(function () { return e; });
    }).then(function (e) {
      ui("cancelled", "Cancelled: the photo was wiped from this phone.", {
        detail: e && e.maybeSent ? "If it had already reached the server, the search is in My searches." :
          "Nothing was searched.",
        buttons: [{ text: "OK", testid: "send-ok", click: hidePanel }]
      });
      if (handler && handler.cancelled) { handler.cancelled(); }
    });
  }

  // Wipes that waited for a connection: tell the audit log, then forget them.
  function tellNotes() {
    if (!navigator.onLine || !csrf || loggedOut) { return Promise.resolve(); }
    return all("notes").then(function (notes) {
      var chain = Promise.resolve();
      notes.forEach(function (n) {
        chain = chain.then(function () { return open(n); }).then(function (o) {
          return fetch("/api/v1/captures/wiped", {
            method: "POST", credentials: "same-origin",
            headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json", "Accept": "application/json" },
            body: JSON.stringify(o.meta)
          }).then(function (r) {
            if (r.ok || r.status === 422) { return del("notes", n.id); }
          });
        }).catch(function () {});
      });
      return chain;
    }).catch(function () {});
  }

  function add(bytes, meta, created) {
    var now = created || Date.now();
    var e = { id: newId(), operator: operator, created: now, expires: now + meta.limitS * 1000, attempts: 0 };
    return seal(meta, bytes).then(function (s) {
      e.iv = s.iv; e.data = s.data;
      return put("captures", e);
    }).then(function () { return e.id; });
  }

  function pending() {
    return all("captures").then(function (l) { return l.filter(function (e) { return e.operator === operator; }); })
      .catch(function () { return []; });
  }

  window.fieldidQueue = {
    add: function (bytes, meta) { return add(bytes, meta).then(function (id) { run(); return id; }); },
    run: run,
    cancel: cancel,
    pending: pending,
    wipeAll: wipeAll,
    onAnswer: function (fn) { handler = fn; }
  };

  if (loggedOut) { wipeAll(); return; }
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (f && f.hasAttribute && f.hasAttribute("data-logout")) {
      ev.preventDefault();
      wipeAll().then(function () { f.submit(); });
    }
  });
  window.addEventListener("online", function () { if (!current) { run(); } tellNotes(); });
  setInterval(function () { if (!current && !timer) { run(); } }, 5000);
  if (operator) { run().then(tellNotes); }
})();
