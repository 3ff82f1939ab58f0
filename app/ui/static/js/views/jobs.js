// Jobs: every background job with live progress, cancel, and errors in words.

import { get, post } from "../api.js";
import { actionButton, clear, h, select } from "../dom.js";
import { duration, when } from "../format.js";
import { ACTIVE, badge, card, empty, flash, jobPanel, pageHeader, progressBar, table } from "../ui.js";

const KINDS = [["", "all kinds"], ["build_zoo", "build zoo"], ["score", "score"], ["search", "search"], ["export", "export"], ["finetune", "fine-tune"],
  ["measure_latency", "measure latency"], ["validation_train", "validation training"], ["validate", "validation report"]];

function subject(job) {
  if (job.kind === "search" && job.result?.search_id) return h("a", { href: `#/searches/${job.result.search_id}` }, "search");
  if (job.zoo_id) return h("a", { href: `#/zoos/${job.zoo_id}`, class: "mono" }, job.zoo_id);
  return "–";
}

export async function jobsView(ctx) {
  const kind = ctx.query.get("kind") || "";
  const list = h("div", {});
  const path = `/v1/jobs?limit=100${kind ? `&kind=${kind}` : ""}`;
  function render(page) {
    clear(list, page.items.length ? table([
      ["Job", (j) => h("a", { href: `#/jobs/${j.id}`, class: "mono" }, j.id)],
      ["Kind", (j) => j.kind.replaceAll("_", " ")],
      ["State", (j) => badge(j.cancel_requested && ACTIVE.has(j.state) ? "cancelling" : j.state)],
      ["Progress", (j) => progressBar(j.state === "succeeded" ? 1 : j.progress, `${j.kind} progress`)],
      ["Message", (j) => (j.error ? h("span", { class: "job-error" }, j.error) : j.message)],
      ["For", subject],
      ["Started", (j) => when(j.created_at)],
      ["", (j) => (ACTIVE.has(j.state) && !j.cancel_requested ? actionButton("Cancel", async () => {
        try { await post(`/v1/jobs/${j.id}/cancel`); render(await get(path)); } catch (error) { flash(error.message); }
      }, { class: "danger small", "data-action": "cancel" }) : null)],
    ], page.items, { rowClass: (j) => `job-row state-row-${j.state}` }) : empty(kind ? "No jobs of this kind." : "No jobs yet: building a zoo, scoring and searching start them."));
    return page.items.some((j) => ACTIVE.has(j.state));
  }
  if (render(await get(path))) ctx.poll(async () => render(await get(path)), 2000, false);
  const filter = select("kind", KINDS, kind);
  filter.setAttribute("aria-label", "Kind of job");
  filter.addEventListener("change", () => { location.hash = filter.value ? `#/jobs?kind=${filter.value}` : "#/jobs"; });
  return h("div", { class: "page" }, pageHeader("Jobs", filter), card(null, list));
}

export async function jobView(ctx) {
  const [id] = ctx.params;
  const job = await get(`/v1/jobs/${id}`);
  const result = h("div", {});
  const showResult = (j) => clear(result, j.result ? h("pre", { class: "code" }, JSON.stringify(j.result, null, 2)) : h("p", { class: "hint" }, "No result yet."));
  showResult(job);
  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", id),
    pageHeader(h("span", {}, `${job.kind.replaceAll("_", " ")} job`)),
    h("div", { class: "grid-2" },
      card("Progress", jobPanel(ctx, job, { title: "Job", onUpdate: showResult }),
        h("p", { class: "hint" }, `Created ${when(job.created_at)}; ran ${duration(job.started_at, job.finished_at)}; attempts ${job.attempts}.`)),
      card("Result", result)));
}
