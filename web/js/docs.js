// Starts Swagger UI on /api/docs (a classic script after swagger-ui-bundle.js, which defines SwaggerUIBundle).
/* global SwaggerUIBundle */
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  SwaggerUIBundle({ url: root.dataset.openapi, dom_id: "#swagger-ui", deepLinking: true });
});
