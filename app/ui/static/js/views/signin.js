// Sign in with an API key. The key stays in this tab's sessionStorage: never in a URL, a cookie or a log.

import { ApiError, get, session } from "../api.js";
import { clear, h } from "../dom.js";

export function signInView(_ctx, onSignedIn) {
  const input = h("input", { type: "password", name: "key", id: "api-key", autocomplete: "off", spellcheck: false,
    required: true, placeholder: "bz_…", "aria-describedby": "key-help" });
  const message = h("div", { class: "form-message", role: "alert" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin card", method: "post" },
    h("h1", {}, "Sign in to BlockZoo"),
    h("p", { id: "key-help", class: "hint" }, "Paste an API key. Create one on the server with ",
      h("code", {}, "blockzoo create-key"), ". The key is kept in this browser tab only and forgotten when you close it."),
    h("label", { class: "field", for: "api-key" }, h("span", { class: "field-label" }, "API key"), input),
    button, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    clear(message);
    session.signIn(key);
    try {
      await get("/v1/spaces?limit=1", { quiet: true });
      onSignedIn();
    } catch (error) {
      session.signOut();
      const text = error instanceof ApiError && error.status === 401
        ? `That key was not accepted: ${error.message}` : error.message;
      clear(message, h("p", { class: "error-box" }, text));
    } finally {
      button.disabled = false;
    }
  });
  setTimeout(() => input.focus(), 0);
  return h("div", { class: "signin-wrap" }, form);
}
