// The document step of the field app: the camera inside a document frame, or a file input.
// A photo taken with the camera is put into the form's file input, so the form posts the same
// way with or without the camera (and works without JavaScript).
(function () {
  "use strict";
  var cfgEl = document.getElementById("document-config");
  if (!cfgEl) { return; }
  var cfg = JSON.parse(cfgEl.textContent);
  if (!cfg.camera) { return; }
  var viewer = document.getElementById("doc-viewer");
  var video = document.getElementById("doc-video");
  var status = document.getElementById("doc-camera-status");
  var docBtn = document.getElementById("doc-shoot");
  var faceBtn = document.getElementById("face-shoot");

  function setFile(name, blob, filename, shownId) {
    var input = document.querySelector("input[name=" + name + "]");
    var dt = new DataTransfer();
    dt.items.add(new File([blob], filename, { type: "image/jpeg" }));
    input.files = dt.files;
    input.required = false;
    document.getElementById(shownId).hidden = false;
  }

  function grab() {
    var c = document.createElement("canvas");
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    return new Promise(function (resolve) { c.toBlob(resolve, "image/jpeg", 0.92); });
  }

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    status.textContent = "No live camera in this browser: choose photo files instead.";
    return;
  }
  navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { width: { ideal: cfg.width }, height: { ideal: cfg.height }, facingMode: { ideal: "environment" } }
  }).then(function (s) {
    video.srcObject = s;
    viewer.hidden = false;
    return video.play();
  }).then(function () {
    status.textContent = "Hold the data page inside the frame";
    docBtn.disabled = false;
    faceBtn.disabled = false;
    docBtn.addEventListener("click", function () {
      grab().then(function (b) {
        setFile("document", b, "document.jpg", "doc-taken");
        status.textContent = "Document photo taken. Now the face.";
      });
    });
    faceBtn.addEventListener("click", function () {
      grab().then(function (b) { setFile("face", b, "face.jpg", "face-taken"); });
    });
  }).catch(function (err) {
    status.textContent = (err && err.name === "NotAllowedError" ? "Camera permission was denied" :
      "The camera is not available") + ": choose photo files instead.";
  });
})();
