// fieldid service worker: makes the app installable and shows an offline notice. It caches only
// the app's own static files, never a page, a result, a photo or an API answer.
// Bump the version whenever a cached file changes: the old cache is then deleted on activation.
var CACHE = "fieldid-static-v2";
var FILES = ["/static/app.css", "/static/capture.js", "/static/queue.js", "/static/icon-192.png",
  "/static/offline.html"];
self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(FILES); }));
  self.skipWaiting();
});
// Take over open pages at once, so the offline page is there from the first visit on.
self.addEventListener("activate", function (e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});
self.addEventListener("fetch", function (e) {
  var url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) { return; }
  if (e.request.mode === "navigate") {
    e.respondWith(fetch(e.request).catch(function () { return caches.match("/static/offline.html"); }));
  } else if (url.pathname.indexOf("/static/") === 0 && url.pathname.indexOf("/static/swagger/") !== 0) {
    // Network first (never a stale script after an update), the cached copy without signal.
    e.respondWith(fetch(e.request).then(function (resp) {
      if (resp.ok) {
        var copy = resp.clone();
        caches.open(CACHE).then(function (c) { return c.put(e.request, copy); });
      }
      return resp;
    }).catch(function () { return caches.match(e.request); }));
  }
});
