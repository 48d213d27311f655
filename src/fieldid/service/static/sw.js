// fieldid service worker: makes the app installable and shows an offline notice. It caches only
// the app's own static files, never a page, a result, a photo or an API answer.
var CACHE = "fieldid-static-v1";
var FILES = ["/static/app.css", "/static/capture.js", "/static/icon-192.png", "/static/offline.html"];
self.addEventListener("install", function (e) {
  e.waitUntil(caches.open(CACHE).then(function (c) { return c.addAll(FILES); }));
  self.skipWaiting();
});
self.addEventListener("activate", function (e) {
  e.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }));
});
self.addEventListener("fetch", function (e) {
  var url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) { return; }
  if (e.request.mode === "navigate") {
    e.respondWith(fetch(e.request).catch(function () { return caches.match("/static/offline.html"); }));
  } else if (url.pathname.indexOf("/static/") === 0 && url.pathname.indexOf("/static/swagger/") !== 0) {
    e.respondWith(caches.match(e.request).then(function (hit) { return hit || fetch(e.request); }));
  }
});
