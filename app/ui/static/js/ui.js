// Shared pieces of every view: page headers, state badges, progress bars, tables, messages, job panels.

import { get, post } from "./api.js";
import { duration, pct } from "./format.js";
import { actionButton, clear, h } from "./dom.js";

export const ACTIVE = new Set(["queued", "running"]);

export function pageHeader(title, ...extra) {
  return h("div", { class: "page-header" }, h("h1", {}, title), h("div", { class: "page-actions" }, extra));
}

export function badge(state) {
  return h("span", { class: ["badge", `state-${state}`], "data-state": state }, state.replaceAll("_", " "));
}

export function progressBar(value, label) {
  const percent = Math.round(Math.max(0, Math.min(1, value || 0)) * 100);
  const bar = h("div", { class: "bar" });
  bar.style.width = `${percent}%`;
  return h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": percent, "aria-label": label || "progress" }, bar, h("span", { class: "progress-text" }, `${percent} %`));
}

export function empty(text, ...actions) {
  return h("div", { class: "empty" }, h("p", {}, text), actions.length ? h("div", { class: "empty-actions" }, actions) : null);
}

export function errorBox(error) {
  const message = error && error.message ? error.message : String(error);
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, "Error: "), message);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

/** A flash message at the top of the page (errors stay until dismissed, notices fade). */
export function flash(text, kind = "error") {
  const box = document.getElementById("flash");
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: ["flash", `flash-${kind}`] }, h("span", {}, text), close);
  close.addEventListener("click", () => item.remove());
  box.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 5000);
}

/** A table; `columns` are [header, row => cell, className?]. Wrapped so that it scrolls on phones. */
export function table(columns, rows, { rowClass } = {}) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls }, title)))),
    h("tbody", {}, rows.map((row, i) => h("tr", { class: rowClass ? rowClass(row) : null },
      columns.map(([title, cell, cls]) => h("td", { class: cls, "data-label": title }, cell(row, i))))))));
}

export function definitionList(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

/** Reads a form's named controls; empty strings become undefined, numbers become numbers. */
export function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") { (values[el.name] ||= []); if (el.checked) values[el.name].push(el.value); continue; }
    if (el.type === "file") { values[el.name] = el.files[0]; continue; }
    if (el.value === "") continue;
    values[el.name] = el.type === "number" ? Number(el.value) : el.value;
  }
  return values;
}

/**
 * A live job: state, progress bar, message, error in words, a cancel button while it is active.
 * Polls GET /v1/jobs/{id} while the view is shown; calls onUpdate(job) on every poll and
 * onFinish(job) once when a job seen active ends (not for one that had ended already).
 */
export function jobPanel(ctx, jobOrId, { onUpdate, onFinish, title = "Job" } = {}) {
  const root = h("div", { class: "job-panel", "data-job": typeof jobOrId === "string" ? jobOrId : jobOrId.id });
  let finished = false;

  function render(job) {
    const cancel = ACTIVE.has(job.state) && !job.cancel_requested
      ? actionButton("Cancel", async () => {
        try { render(await post(`/v1/jobs/${job.id}/cancel`)); } catch (error) { flash(error.message); }
      }, { class: "danger small", "data-action": "cancel" })
      : null;
    clear(root,
      h("div", { class: "job-head" },
        h("span", { class: "job-title" }, title, " ", h("a", { href: `#/jobs/${job.id}`, class: "mono" }, job.id)),
        badge(job.cancel_requested && ACTIVE.has(job.state) ? "cancelling" : job.state), cancel),
      progressBar(job.state === "succeeded" ? 1 : job.progress, `${title} progress`),
      h("p", { class: "job-message" }, job.state === "succeeded" ? `done in ${duration(job.started_at, job.finished_at)}`
        : job.message),
      job.error ? h("p", { class: "job-error", role: "alert" }, job.error) : null);
  }

  let watched = false; // seen queued or running: the page drew the job's "before" and needs its "after"
  async function tick(job) {
    render(job);
    onUpdate?.(job);
    if (ACTIVE.has(job.state)) watched = true;
    else if (!finished) {
      finished = true;
      if (watched) onFinish?.(job);
      return false;
    }
    return true;
  }

  if (typeof jobOrId === "string") root.append(loading("Loading the job…"));
  else tick(jobOrId);
  const id = typeof jobOrId === "string" ? jobOrId : jobOrId.id;
  ctx.poll(async () => {
    if (finished) return false;
    try {
      return await tick(await get(`/v1/jobs/${id}`));
    } catch (error) {
      clear(root, errorBox(error));
      return error.status !== 404;
    }
  }, 1000, typeof jobOrId === "string");
  return root;
}

export function jobProgressText(job) {
  return `${pct(job.progress, 0)} ${job.message || ""}`;
}
