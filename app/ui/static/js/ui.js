// Shared pieces of every view: page headers, state badges, progress bars, tables, messages, job panels.

import { get, post, streamEvents } from "./api.js";
import { duration, eta, pct } from "./format.js";
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
 * Follows a job live: its event stream (`GET /v1/jobs/{id}/events`, read with fetch so that the key
 * travels in the Authorization header), or, when the stream cannot be had or breaks off, polling
 * `GET /v1/jobs/{id}` every second. `handle(job)` gets every view and returns false once it needs
 * no more; `onError(error, fatal)` hears a job that cannot be read (fatal: it is gone, or the key
 * is refused, and following stops). `onTransport("stream" | "polling")` says which one is in use.
 * Everything stops when the view is left.
 */
export function watchJob(ctx, id, { handle, onError, onTransport }) {
  const controller = new AbortController();
  ctx.onLeave(() => controller.abort());
  let done = false;
  const take = (job) => {
    if (done || !ctx.alive) return;
    if (handle(job) === false) { done = true; controller.abort(); }
  };
  const fail = (error) => { done = true; controller.abort(); onError?.(error, true); };
  const poll = () => {
    onTransport?.("polling");
    ctx.poll(async () => {
      if (done) return false;
      try {
        take(await get(`/v1/jobs/${id}`));
      } catch (error) {
        if (error.status === 404 || error.status === 401) { fail(error); return false; }
        onError?.(error, false);
      }
      return !done;
    }, 1000);
  };
  (async () => {
    let brokenOff = 0; // streams that closed without their end, in a row
    while (!done && ctx.alive) {
      let ended = false, events = 0;
      onTransport?.("stream");
      try {
        await streamEvents(`/v1/jobs/${id}/events`, (name, data) => {
          if (name !== "job" && name !== "end") return; // "reconnect": the loop opens a new stream
          events += 1;
          const job = JSON.parse(data);
          if (name === "end") ended = true;
          if (job.state === "deleted") fail(new Error(`Job ${id} was deleted (with its zoo).`));
          else take(job);
        }, controller.signal);
      } catch (error) {
        if (done || !ctx.alive) return;
        if (error.status === 404 || error.status === 401) return fail(error);
        return poll(); // no stream here (a proxy, an old server, the connection): read the job every second
      }
      if (ended || done) return;
      brokenOff = events ? 0 : brokenOff + 1;
      if (brokenOff >= 2) return poll();
    }
  })();
}

/**
 * A live job: state, phase and ETA, progress bar, message, error in words, a cancel button while
 * it is active. Follows the job through its event stream (polling if need be, see watchJob) while
 * the view is shown; calls onUpdate(job) on every view and onFinish(job) once when a job seen
 * active ends (not for one that had ended already).
 */
export function jobPanel(ctx, jobOrId, { onUpdate, onFinish, title = "Job" } = {}) {
  const id = typeof jobOrId === "string" ? jobOrId : jobOrId.id;
  const root = h("div", { class: "job-panel", "data-job": id });
  let finished = false;

  function render(job) {
    const cancel = ACTIVE.has(job.state) && !job.cancel_requested
      ? actionButton("Cancel", async () => {
        try { tick(await post(`/v1/jobs/${job.id}/cancel`)); } catch (error) { flash(error.message); }
      }, { class: "danger small", "data-action": "cancel" })
      : null;
    const live = job.state === "running" && !job.cancel_requested
      ? [job.phase || "running", job.eta_s !== null && job.eta_s !== undefined ? ` · ${eta(job.eta_s)}` : ""].join("")
      : job.state === "queued" ? "waiting for a worker" : null;
    clear(root,
      h("div", { class: "job-head" },
        h("span", { class: "job-title" }, title, " ", h("a", { href: `#/jobs/${job.id}`, class: "mono" }, job.id)),
        badge(job.cancel_requested && ACTIVE.has(job.state) ? "cancelling" : job.state), cancel),
      progressBar(job.state === "succeeded" ? 1 : job.progress, `${title} progress`),
      live ? h("p", { class: "job-phase" }, live) : null,
      h("p", { class: "job-message" }, job.state === "succeeded" ? `done in ${duration(job.started_at, job.finished_at)}`
        : job.message),
      job.error ? h("p", { class: "job-error", role: "alert" }, job.error) : null);
  }

  let watched = false; // seen queued or running: the page drew the job's "before" and needs its "after"
  function tick(job) {
    if (finished) return false;
    render(job);
    onUpdate?.(job);
    if (ACTIVE.has(job.state)) watched = true;
    else {
      finished = true;
      if (watched) onFinish?.(job);
      return false;
    }
    return true;
  }

  if (typeof jobOrId === "string") root.append(loading("Loading the job…"));
  else tick(jobOrId);
  if (!finished) {
    watchJob(ctx, id, {
      handle: tick,
      onError: (error) => clear(root, errorBox(error)),
      onTransport: (how) => { root.dataset.transport = how; },
    });
  }
  return root;
}

/** Draws the current page again (after an action that changes what it shows, e.g. a resumed build). */
export function refreshView() {
  window.dispatchEvent(new CustomEvent("blockzoo:refresh"));
}

/** Forgets the tab's key and shows the sign-in page with `message`. */
export function signOutWith(message) {
  window.dispatchEvent(new CustomEvent("blockzoo:signout", { detail: { message } }));
}

export function jobProgressText(job) {
  return `${pct(job.progress, 0)} ${job.message || ""}`;
}
