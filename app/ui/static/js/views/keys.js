// API keys: the owner's keys (the one this tab uses marked), a new key shown once, revoke.

import { get, post, session } from "../api.js";
import { actionButton, clear, field, h } from "../dom.js";
import { when } from "../format.js";
import { badge, card, empty, errorBox, flash, formValues, pageHeader, signOutWith, table } from "../ui.js";

/** True for the key this tab signed in with (a key starts with its prefix). */
const isThisTab = (key) => Boolean(session.key()?.startsWith(key.prefix));

export async function keysView() {
  const list = h("div", {});
  const created = h("div", { class: "new-key", "aria-live": "polite" });

  async function refresh() { render(await get("/v1/keys")); }

  function revokeButton(key) {
    return actionButton("Revoke", async () => {
      const own = isThisTab(key);
      const question = own ? `Revoke ${key.prefix}, the key this tab is signed in with? The tab will be signed out.`
        : `Revoke ${key.prefix} (${key.name})? Requests with it will be refused at once.`;
      if (!window.confirm(question)) return;
      try {
        await post(`/v1/keys/${key.id}/revoke`);
      } catch (error) { flash(error.message); return; }
      if (own) return signOutWith(`You revoked the key this tab used (${key.prefix}); sign in with another key.`);
      flash(`Revoked ${key.prefix}.`, "notice");
      await refresh().catch((error) => flash(error.message));
    }, { class: "danger small", "data-action": "revoke" });
  }

  function render(keys) {
    clear(list, keys.length ? table([
      ["Name", (k) => h("span", {}, k.name, isThisTab(k) ? h("span", { class: "tag" }, "this tab") : null)],
      ["Prefix", (k) => h("span", { class: "mono" }, k.prefix)],
      ["State", (k) => badge(k.revoked_at ? "revoked" : "active")],
      ["Created", (k) => when(k.created_at)],
      ["Last used", (k) => when(k.last_used_at)],
      ["", (k) => (k.revoked_at ? null : revokeButton(k))],
    ], keys, { rowClass: (k) => `key-row${k.revoked_at ? " revoked" : ""}` }) : empty("No keys."));
  }

  const message = h("div", { class: "form-message" });
  const form = h("form", { class: "inline-form", "data-form": "key" },
    field("Name", h("input", { type: "text", name: "name", placeholder: "e.g. laptop", maxlength: 200 })),
    h("button", { type: "submit", class: "primary" }, "Create key"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { name } = formValues(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const key = await post("/v1/keys", name ? { name } : {});
      form.reset();
      const value = h("input", { type: "text", readonly: true, value: key.key, class: "mono", "aria-label": "The new API key",
        onfocus: (e) => e.target.select() });
      clear(created, h("div", { class: "notice-box", role: "status" },
        h("p", {}, h("strong", {}, `New key “${key.name}”. `), "Copy it now: it is shown this once and cannot be read again."),
        value));
      await refresh();
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });

  await refresh();
  return h("div", { class: "page" }, pageHeader("API keys"),
    card("Create a key", h("div", { class: "stack" },
      h("p", { class: "hint" }, "Another key for the same owner: it sees the same datasets, zoos and jobs. ",
        "To rotate a key, create one, sign in with it, and revoke the old one."), form, created)),
    card("Your keys", list));
}
