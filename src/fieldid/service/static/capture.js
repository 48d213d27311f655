// Capture with live guidance: small frames go to the quality endpoint (not a search, not stored);
// the capture button is enabled only while the gate passes. Without a camera, a file input.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("capture-config").textContent);
  var video = document.getElementById("video");
  var overlay = document.getElementById("overlay");
  var guidance = document.getElementById("guidance");
  var button = document.getElementById("capture-btn");
  var errorBox = document.getElementById("capture-error");
  var passes = false, busy = false, searching = false, timer = null, stream = null;

  function fallback(reason) {
    if (timer) { clearInterval(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    document.getElementById("camera-section").hidden = true;
    document.getElementById("fallback-section").hidden = false;
    document.getElementById("fallback-reason").textContent = reason +
      " Take a photo with the phone's camera, or choose one.";
  }

  function showProblem(p) {
    errorBox.hidden = false;
    errorBox.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = p.detail || cfg.failText || "The search was refused.";
    errorBox.appendChild(strong);
    if (p.guidance && p.guidance.length > 1) {
      var ul = document.createElement("ul");
      ul.className = "guidance-list";
      p.guidance.slice(1).forEach(function (g) {
        var li = document.createElement("li"); li.textContent = g.message; ul.appendChild(li);
      });
      errorBox.appendChild(ul);
    }
    var code = document.createElement("span");
    code.className = "muted code";
    code.textContent = " " + (p.code || "");
    errorBox.appendChild(code);
  }

  function drawBox(result) {
    var ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (!result.face) { return; }
    var k = overlay.width / result.frame.width;
    var b = result.face.box;
    ctx.lineWidth = 4;
    ctx.strokeStyle = result.passes ? "#ffffff" : "#f2b84b";
    ctx.setLineDash(result.passes ? [] : [14, 8]);
    ctx.strokeRect(b[0] * k, b[1] * k, b[2] * k, b[3] * k);
  }

  function setGuidance(result) {
    passes = !!result.passes;
    if (passes) {
      guidance.textContent = "Good: hold still and take the photo";
      guidance.classList.add("ready");
    } else {
      guidance.textContent = result.guidance.length ? result.guidance[0].message : "Adjust the photo";
      guidance.classList.remove("ready");
    }
    guidance.dataset.code = passes ? "ready" : (result.guidance[0] || {}).code || "";
    button.disabled = !passes || searching;
  }

  function frameBlob(width, quality) {
    var w = video.videoWidth, h = video.videoHeight;
    var canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = Math.round(h * width / w);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", quality); });
  }

  function post(url, form) {
    return fetch(url, {
      method: "POST", body: form, credentials: "same-origin",
      headers: { "X-CSRF-Token": cfg.csrf, "Accept": "application/json" }
    });
  }

  function tick() {
    if (busy || searching || !video.videoWidth) { return; }
    busy = true;
    var scale = video.videoWidth / cfg.guidanceWidth;
    frameBlob(cfg.guidanceWidth, 0.8).then(function (blob) {
      var form = new FormData();
      form.append("frame", blob, "frame.jpg");
      form.append("scale", String(Math.max(1, scale)));
      return post("/api/v1/quality", form);
    }).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] === 200) { drawBox(res[1]); setGuidance(res[1]); }
        else if (res[0] === 401) { window.location = "/login"; }
        else { guidance.textContent = res[1].detail || "Guidance unavailable"; }
      })
      .catch(function () { guidance.textContent = "Guidance unavailable: check the connection"; })
      .then(function () { busy = false; });
  }

  function capture() {
    if (!passes || searching) { return; }
    searching = true;
    button.disabled = true;
    guidance.textContent = cfg.busyText || "Searching…";
    // The search by default; the demo's onboarding page sends the photo elsewhere (cfg.endpoint).
    var fields = cfg.fields || {
      purpose: cfg.purpose, case_ref: cfg.caseRef, notice_given: cfg.noticeGiven ? "true" : "false"
    };
    frameBlob(video.videoWidth, 0.92).then(function (blob) {
      var form = new FormData();
      form.append("image", blob, "capture.jpg");
      Object.keys(fields).forEach(function (k) { form.append(k, fields[k]); });
      return post(cfg.endpoint || "/api/v1/searches", form);
    }).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] === 201) { window.location = res[1].links.page; return; }
        showProblem(res[1]);
        searching = false;
        guidance.textContent = "Adjust and try again";
      })
      .catch(function () {
        searching = false;
        showProblem({ detail: "The search could not be sent: check the connection." });
      });
  }

  if (!cfg.camera) { return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fallback("This browser gives no access to a live camera (it needs https or localhost).");
    return;
  }
  navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: cfg.width }, height: { ideal: cfg.height }, facingMode: { ideal: "environment" } }
  }).then(function (s) {
    stream = s;
    video.srcObject = s;
    return video.play();
  }).then(function () {
    guidance.textContent = "Point the camera at the face";
    button.addEventListener("click", capture);
    timer = setInterval(tick, Math.round(1000 / cfg.fps));
  }).catch(function (err) {
    var why = err && err.name === "NotAllowedError" ? "Camera permission was denied." :
      "The camera is not available (" + (err && err.name || "error") + ").";
    fallback(why);
  });
})();
