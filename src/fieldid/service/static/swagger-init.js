// Swagger UI for fieldid's API (/docs), served offline from fastapi-offline's bundle.
// "Try it out" works two ways:
// - logged in with the browser session: the cookie goes with every request (same origin), and
//   this script adds the session's CSRF token (from the page's <meta name="csrf-token">) to every
//   state-changing request, as the API requires;
// - with an API token: "Authorize" -> bearerAuth; a bearer request needs no CSRF token.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var safe = /^(GET|HEAD|OPTIONS)$/i;
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (req) {
      req.credentials = "same-origin";
      if (csrf && !safe.test(req.method || "GET")) {
        req.headers = req.headers || {};
        req.headers["X-CSRF-Token"] = csrf;
      }
      return req;
    },
  });
})();
