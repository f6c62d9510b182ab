// Swagger UI over this node's own OpenAPI document (no inline script: the page's CSP).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
                               deepLinking: true, tryItOutEnabled: false});
});
