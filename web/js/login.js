// The login page: post the credentials, show what went wrong inline, go to the console on success.

import { api, ApiError } from "./api.js";
import { applyStatic, languageSwitch, loadLanguage, pickLanguage, t } from "./i18n.js";

const form = document.getElementById("login-form");
const username = document.getElementById("username");
const password = document.getElementById("password");
const error = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function showError(message, field = null) {
  error.textContent = message;
  error.hidden = !message;
  for (const input of [username, password]) input.removeAttribute("aria-invalid");
  if (message) {
    if (field) field.setAttribute("aria-invalid", "true");
    (field || username).focus();
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = username.value.trim();
  if (!user) return showError(t("login.enter_username"), username);
  if (!password.value) return showError(t("login.enter_password"), password);
  showError("");
  submit.disabled = true;
  submit.textContent = t("login.signing");
  try {
    const answer = await api("POST", "/api/login", { username: user, password: password.value });
    location.replace(answer.home || "/");  // where the role starts (the server says)
  } catch (err) {
    submit.disabled = false;
    submit.textContent = t("login.submit");
    if (err instanceof ApiError && err.status === 401) {
      password.value = "";
      showError(err.message || "Wrong username or password.", password);
    } else {
      showError(err.message || t("login.failed"));
    }
  }
});

loadLanguage(pickLanguage()).then(() => {
  applyStatic();
  languageSwitch(document.getElementById("lang"), async (code) => {
    await loadLanguage(code);
    applyStatic();
  });
}, () => {});
