// Capture with live guidance: small frames go to the quality endpoint (not a search, not stored);
// the capture button is enabled only while the gate passes on a fresh answer: whenever guidance
// is unavailable (no signal, server error, frames stalled) it is disabled. A search goes through
// the offline-safe queue (queue.js): held encrypted until the server answers, retried with the
// same Idempotency-Key. Without a camera, a file input.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("capture-config").textContent);
  var video = document.getElementById("video");
  var overlay = document.getElementById("overlay");
  var guidance = document.getElementById("guidance");
  var button = document.getElementById("capture-btn");
  var errorBox = document.getElementById("capture-error");
  var passes = false, busy = false, searching = false, timer = null, stream = null;
  var lastGood = 0;
  // Guidance older than this is no guidance: the button goes off until a fresh answer comes.
  var STALE_MS = Math.max(3000, 4000 / (cfg.fps || 3));
  // A guidance request with no answer after this long is abandoned (and guidance unavailable).
  var GUIDANCE_TIMEOUT_MS = 5000;
  var queue = cfg.endpoint ? null : window.fieldidQueue;
  // [location]: off unless the workspace turns it on. On, the position is asked for once per
  // photo taken (never for guidance frames) and rounded HERE, on the phone, to the workspace's
  // grid; the precise position is dropped at once and never stored or sent.
  var loc = cfg.location || {};

  function decimals(g) { return Math.max(0, -Math.floor(Math.log10(g) + 1e-9)) + 2; }

  function coarse(lat, lon) {
    var g = loc.gridDeg, d = decimals(g);
    function snap(v) { return (Math.round(v / g) * g).toFixed(d); }
    return snap(lat) + "," + snap(lon);
  }

  // The coarse cell "lat,lon", or null (location off, unavailable or refused: the server then
  // decides; with [location] required it refuses the search and says why).
  function whereNow() {
    if (!loc.enabled || cfg.endpoint || !navigator.geolocation) { return Promise.resolve(null); }
    return new Promise(function (resolve) {
      navigator.geolocation.getCurrentPosition(function (p) {
        resolve(coarse(p.coords.latitude, p.coords.longitude));
      }, function () { resolve(null); }, { enableHighAccuracy: false, maximumAge: 60000, timeout: 8000 });
    });
  }

  function fallback(reason) {
    if (timer) { clearInterval(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    document.getElementById("camera-section").hidden = true;
    document.getElementById("fallback-section").hidden = false;
    document.getElementById("fallback-reason").textContent = reason +
      " Take a photo with the phone's camera, or choose one.";
  }

  function sentence(s) { return s ? s.charAt(0).toUpperCase() + s.slice(1) : s; }

  function showProblem(p) {
    errorBox.hidden = false;
    errorBox.textContent = "";
    errorBox.dataset.code = p.code || "";
    var strong = document.createElement("strong");
    var refused = p.search_id ? "Refused: the photo was not searched. " : "";
    strong.textContent = refused + sentence(p.detail || cfg.failText || "The search was refused.");
    errorBox.appendChild(strong);
    if (p.guidance && p.guidance.length > 1) {
      var ul = document.createElement("ul");
      ul.className = "guidance-list";
      p.guidance.slice(1).forEach(function (g) {
        var li = document.createElement("li"); li.textContent = sentence(g.text || g.message); ul.appendChild(li);
      });
      errorBox.appendChild(ul);
    }
    var code = document.createElement("span");
    code.className = "muted code";
    code.textContent = " " + (p.code || "");
    errorBox.appendChild(code);
    if (p.search_id) {
      var a = document.createElement("a");
      a.href = "/results/" + p.search_id;
      a.className = "inline-action";
      a.setAttribute("data-testid", "refused-attempt");
      a.textContent = "The refused attempt and its receipt";
      errorBox.appendChild(document.createElement("br"));
      errorBox.appendChild(a);
    }
  }

  function drawBox(result) {
    var ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (!result || !result.face) { return; }
    var k = overlay.width / result.frame.width;
    var b = result.face.box;
    ctx.lineWidth = 4;
    ctx.strokeStyle = result.passes ? "#ffffff" : "#f2b84b";
    ctx.setLineDash(result.passes ? [] : [14, 8]);
    ctx.strokeRect(b[0] * k, b[1] * k, b[2] * k, b[3] * k);
  }

  function say(code, message, detail, ready) {
    guidance.textContent = "";
    guidance.appendChild(document.createTextNode(sentence(message)));
    if (detail) {
      var small = document.createElement("span");
      small.className = "guidance-detail";
      small.textContent = detail;
      guidance.appendChild(small);
    }
    guidance.classList.toggle("ready", !!ready);
    guidance.dataset.code = code;
  }

  function updateButton() {
    var fresh = Date.now() - lastGood < STALE_MS;
    button.disabled = !(passes && fresh) || searching;
  }

  function unavailable(message) {
    passes = false;
    drawBox(null);
    say("unavailable", message || "Guidance unavailable: check the connection", "", false);
    updateButton();
  }

  function setGuidance(result) {
    passes = !!result.passes;
    lastGood = Date.now();
    if (passes) {
      say("ready", "Good: hold still and take the photo", "", true);
    } else {
      var g = result.guidance[0] || { code: "", message: "Adjust the photo" };
      say(g.code || "", g.message, g.detail || "", false);
    }
    updateButton();
  }

  function frameBlob(width, quality) {
    var w = video.videoWidth, h = video.videoHeight;
    var canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = Math.round(h * width / w);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", quality); });
  }

  function post(url, form, timeoutMs) {
    var ctrl = new AbortController();
    var t = timeoutMs ? setTimeout(function () { ctrl.abort(); }, timeoutMs) : null;
    return fetch(url, {
      method: "POST", body: form, credentials: "same-origin", signal: ctrl.signal,
      headers: { "X-CSRF-Token": cfg.csrf, "Accept": "application/json" }
    }).then(function (r) { if (t) { clearTimeout(t); } return r; },
      function (e) { if (t) { clearTimeout(t); } throw e; });
  }

  function tick() {
    if (searching || !video.videoWidth) { updateButton(); return; }
    if (!navigator.onLine) { unavailable("Guidance unavailable: no signal"); return; }
    if (busy) {
      if (lastGood && Date.now() - lastGood >= STALE_MS) { unavailable("Guidance unavailable: waiting for the server"); }
      else { updateButton(); }
      return;
    }
    busy = true;
    var scale = video.videoWidth / cfg.guidanceWidth;
    frameBlob(cfg.guidanceWidth, 0.8).then(function (blob) {
      var form = new FormData();
      form.append("frame", blob, "frame.jpg");
      form.append("scale", String(Math.max(1, scale)));
      return post("/api/v1/quality", form, GUIDANCE_TIMEOUT_MS);
    }).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] === 200) { drawBox(res[1]); setGuidance(res[1]); }
        else if (res[0] === 401) { window.location = "/login"; }
        else { unavailable("Guidance unavailable: " + (res[1].detail || "the server refused the frame")); }
      })
      .catch(function () { unavailable("Guidance unavailable: check the connection"); })
      .then(function () { busy = false; });
  }

  function answered(status, json) {
    searching = false;
    if (status === 201 || status === 200) { window.location = json.links.page; return; }
    showProblem(json);
    var code = json.code || "";
    if (code === "location.approval_required") {
      say("refused", "A supervisor's approval is needed first", "then take the photo again", false);
    } else if (code === "location.refused") {
      say("refused", "No search is permitted here", "", false);
    } else if (code.indexOf("location.") === 0) {
      say("refused", "Allow this phone's location and try again", "", false);
    } else {
      say("refused", "Adjust and try again", "", false);
    }
    updateButton();
  }
  answered.cancelled = function () {
    searching = false;
    say("", "Point the camera at the face", "", false);
    updateButton();
  };

  function capture() {
    updateButton();
    if (button.disabled) { return; }
    searching = true;
    button.disabled = true;
    errorBox.hidden = true;
    say("sending", "Photo taken", "", false);
    // The search by default; the demo's onboarding page sends the photo elsewhere (cfg.endpoint).
    var fields = cfg.fields || {
      purpose: cfg.purpose, case_ref: cfg.caseRef, notice_given: cfg.noticeGiven ? "true" : "false",
      capture: "live"
    };
    // documents first: the document check this search follows, and why (if it passed)
    if (!cfg.fields && cfg.documentCheck) { fields.document_check = cfg.documentCheck; }
    if (!cfg.fields && cfg.documentReason) { fields.document_reason = cfg.documentReason; }
    var photo = frameBlob(video.videoWidth, 0.92);
    Promise.all([photo, whereNow()]).then(function (got) {
      var blob = got[0];
      if (got[1]) { fields = Object.assign({}, fields, { location: got[1] }); }
      if (queue) {
        return blob.arrayBuffer().then(function (bytes) {
          return queue.add(bytes, {
            endpoint: "/api/v1/searches", fields: fields, csrf: cfg.csrf,
            limitS: cfg.queueLimitS || 900, sendTimeoutS: cfg.sendTimeoutS || 30
          });
        });
      }
      guidance.textContent = cfg.busyText || "Sending…";
      var form = new FormData();
      form.append("image", blob, "capture.jpg");
      Object.keys(fields).forEach(function (k) { form.append(k, fields[k]); });
      return post(cfg.endpoint, form)
        .then(function (r) { return r.json().then(function (j) { answered(r.status, j); }); })
        .catch(function () {
          searching = false;
          showProblem({ detail: "The photo could not be sent: check the connection." });
          updateButton();
        });
    });
  }

  if (queue) {
    queue.onAnswer(answered);
    // A capture still waiting from before (the page was left or reloaded): it keeps trying,
    // and no second one is taken meanwhile.
    queue.pending().then(function (list) { if (list.length) { searching = true; updateButton(); } });
  }
  // The file form (no live camera): the same coarse location, filled in as it is sent.
  var fileForm = document.querySelector("[data-testid=fallback-form]");
  var fileLocation = document.querySelector("[data-testid=file-location]");
  if (fileForm && fileLocation && loc.enabled) {
    var filled = false;
    fileForm.addEventListener("submit", function (ev) {
      if (filled) { return; }
      ev.preventDefault();
      whereNow().then(function (where) {
        fileLocation.value = where || "";
        filled = true;
        fileForm.submit();
      });
    });
  }
  if (!cfg.camera) { return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fallback("This browser gives no access to a live camera (it needs https or localhost).");
    return;
  }
  window.addEventListener("offline", function () { if (!searching) { unavailable("Guidance unavailable: no signal"); } });
  navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: cfg.width }, height: { ideal: cfg.height }, facingMode: { ideal: "environment" } }
  }).then(function (s) {
    stream = s;
    video.srcObject = s;
    return video.play();
  }).then(function () {
    say("", "Point the camera at the face", "", false);
    button.addEventListener("click", capture);
    timer = setInterval(tick, Math.round(1000 / cfg.fps));
  }).catch(function (err) {
    var why = err && err.name === "NotAllowedError" ? "Camera permission was denied." :
      "The camera is not available (" + (err && err.name || "error") + ").";
    fallback(why);
  });
})();
