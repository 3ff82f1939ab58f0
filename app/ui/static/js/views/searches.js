// Searches: create with a budget, follow the job, explore the Pareto plot, act on the picks.

import { download, get, post } from "../api.js";
import { paretoPlot } from "../charts.js";
import { actionButton, clear, field, h, numberInput, select } from "../dom.js";
import { int, ms, pct, when } from "../format.js";
import { badge, card, definitionList, empty, errorBox, flash, formValues, jobPanel, pageHeader, table } from "../ui.js";
import { tableLabel, tablesFor } from "./latency.js";

function createForm(zoos, chosen, tables, chosenTable) {
  const message = h("div", { class: "form-message" });
  const zooPicker = select("zoo_id", zoos.map((z) => [z.id, `${z.id} (${z.space_name})`]), chosen);
  const tablePicker = h("select", { name: "latency_table_id" });
  const latencyHint = h("small", { class: "hint" });
  const latencyInput = numberInput("max_latency_ms", "", { min: 0.001, step: "any", placeholder: "no limit" });
  function fillTables(selected) {
    const zoo = zoos.find((z) => z.id === zooPicker.value);
    const fitting = zoo ? tablesFor(tables, zoo) : [];
    clear(tablePicker, h("option", { value: "" }, fitting.length ? "none" : "none fits this zoo"),
      fitting.map((t) => h("option", { value: t.id, selected: t.id === selected }, tableLabel(t))));
    describeTable();
  }
  function describeTable() {
    const t = tables.find((x) => x.id === tablePicker.value);
    latencyInput.disabled = !t;
    clear(latencyHint, t ? `Fastest achievable: ${ms(t.fastest_ms)}; the largest architecture: ${ms(t.largest_ms)}.`
      : h("span", {}, "Needs a latency table of the zoo's space and shapes: ", h("a", { href: "#/latency-tables" }, "latency tables"), "."));
  }
  zooPicker.addEventListener("change", () => fillTables(""));
  tablePicker.addEventListener("change", describeTable);
  fillTables(chosenTable);
  const form = h("form", { class: "stack", "data-form": "search" },
    h("div", { class: "grid-3" },
      field("Zoo", zooPicker),
      field("Max MACs per image", numberInput("max_macs", "", { min: 1, placeholder: "no limit" })),
      field("Max params", numberInput("max_params", "", { min: 1, placeholder: "no limit" }))),
    h("div", { class: "grid-3" },
      field("Latency table", tablePicker),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Max latency (ms)"), latencyInput, latencyHint)),
    h("div", { class: "grid-3" },
      field("Strategy", select("strategy", [["evolution", "evolution"], ["random", "random"]], "evolution")),
      field("Population", numberInput("population", 8, { min: 2 })),
      field("Generations", numberInput("generations", 1, { min: 0 }))),
    h("div", { class: "grid-3" },
      field("Picks (top k)", numberInput("top_k", 3, { min: 1, max: 100 })),
      field("Metric", select("metric", [["proxy_accuracy", "proxy accuracy"], ["heldout_accuracy", "held-out accuracy"]], "proxy_accuracy")),
      field("Seed", numberInput("seed", 0))),
    h("button", { type: "submit", class: "primary" }, "Start search"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { zoo_id, max_macs, max_params, max_latency_ms, latency_table_id, ...rest } = formValues(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const search = await post(`/v1/zoos/${zoo_id}/searches`, { budget: { max_macs, max_params, max_latency_ms },
        ...(latency_table_id ? { latency_table_id } : {}), ...rest });
      location.hash = `#/searches/${search.id}`;
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function budgetText(budget) {
  return [budget.max_macs ? `≤ ${int(budget.max_macs)} MACs` : null, budget.max_params ? `≤ ${int(budget.max_params)} params` : null,
    budget.max_latency_ms ? `≤ ${ms(budget.max_latency_ms)}` : null].filter(Boolean).join(", ") || "none";
}

export async function searchesView(ctx) {
  const [zoos, searches, tables] = await Promise.all([get("/v1/zoos?limit=200"), get("/v1/searches?limit=200").then((p) => p.items),
    get("/v1/latency-tables?limit=200").catch(() => ({ items: [] }))]);
  const ready = zoos.items.filter((z) => z.state === "ready");
  const list = searches.length ? table([
    ["Search", (s) => h("a", { href: `#/searches/${s.id}`, class: "mono" }, s.id)],
    ["State", (s) => badge(s.state)],
    ["Zoo", (s) => h("a", { href: `#/zoos/${s.zoo_id}`, class: "mono" }, s.zoo_id)],
    ["Budget", (s) => budgetText(s.request.budget || {})],
    ["Best", (s) => { const b = s.picks?.[0]; return b ? `${pct(b.score)} at ${b.latency_ms ? ms(b.latency_ms) : `${int(b.macs)} MACs`}` : "–"; }],
    ["Started", (s) => when(s.created_at)],
  ], searches) : empty("No searches yet.");
  const create = ready.length ? createForm(ready, ctx.query.get("zoo") || ready[0].id, tables.items, ctx.query.get("latency") || "")
    : empty("A search runs on a ready zoo; you have none yet.", h("a", { class: "button primary", href: "#/zoos" }, "Create a zoo"));
  return h("div", { class: "page" }, pageHeader("Searches"), card("Start a search", create), card("Your searches", list));
}

function finetuneForm(zooId, pick) {
  const message = h("div", { class: "form-message" });
  const form = h("form", { class: "inline-form", "data-form": "finetune" },
    field("Init", select("init", [["zoo", "zoo (distilled blocks)"], ["remap", "remap"], ["scratch", "scratch"]], "zoo")),
    field("Epochs", numberInput("epochs", 1, { min: 0.01, step: "any" })),
    h("button", { type: "submit", class: "primary small" }, "Start fine-tune"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { init, epochs } = formValues(form);
    try {
      const finetune = await post(`/v1/zoos/${zooId}/finetunes`, { architecture: pick.arch_id, init, recipe: { epochs } });
      location.hash = `#/finetunes/${finetune.id}`;
    } catch (error) {
      clear(message, errorBox(error));
    }
  });
  return form;
}

/** The assembled weights; when the export takes longer than `wait`, its job is shown and the file follows. */
async function downloadWeights(ctx, zooId, archId, detail) {
  const path = `/v1/zoos/${zooId}/architectures/${archId}/weights`;
  try {
    const outcome = await download(`${path}?wait=30`, `${archId}.safetensors`);
    if (!outcome.pending) return flash(`Saved ${outcome.name}.`, "notice");
    clear(detail, card(`Exporting ${archId}`, jobPanel(ctx, outcome.pending, { title: "Export", async onFinish(job) {
      if (job.state !== "succeeded") return;
      const done = await download(`${path}?wait=0`, `${archId}.safetensors`);
      if (!done.pending) { clear(detail); flash(`Saved ${done.name}.`, "notice"); }
    } })));
  } catch (error) { flash(error.message); }
}

function picksTable(ctx, search) {
  const detail = h("div", {});
  const rows = table([
    ["#", (_, i) => String(i + 1), "num"],
    ["Architecture", (p) => h("a", { href: `#/builder?zoo=${search.zoo_id}&arch=${p.arch_id}`, class: "mono" }, p.arch_id)],
    ["Score", (p) => pct(p.score), "num"],
    ["MACs", (p) => int(p.macs), "num"],
    ["Params", (p) => int(p.params), "num"],
    ...(search.picks.some((p) => p.latency_ms !== null && p.latency_ms !== undefined) ? [["Latency", (p) => ms(p.latency_ms), "num"]] : []),
    ["", (p) => h("div", { class: "row" },
      actionButton("Download weights", () => downloadWeights(ctx, search.zoo_id, p.arch_id, detail),
        { class: "small secondary", "data-action": "download" }),
      h("button", { type: "button", class: "small secondary", "data-action": "finetune",
        onclick: () => clear(detail, card(`Fine-tune ${p.arch_id}`, finetuneForm(search.zoo_id, p))) }, "Fine-tune"))],
  ], search.picks);
  return h("div", {}, rows, detail);
}

export async function searchView(ctx) {
  const [id] = ctx.params;
  let search = await get(`/v1/searches/${id}`);
  const results = h("div", {});
  const budget = search.request.budget || {};

  function drawResults() {
    if (search.state !== "succeeded") {
      clear(results, search.state === "failed" || search.state === "cancelled"
        ? card("Results", empty(`This search ${search.state}; it has no results.`))
        : card("Results", h("p", { class: "hint" }, "The plot and the picks appear when the search is done.")));
      return;
    }
    const candidates = search.candidates?.length ? search.candidates
      : [...new Map([...(search.pareto || []), ...(search.picks || [])].map((p) => [p.arch_id, p])).values()];
    const axes = [["macs", "MACs"], ["params", "params"]];
    if (candidates.some((p) => p.latency_ms !== null && p.latency_ms !== undefined)) axes.push(["latency_ms", "latency"]);
    let axis = budget.max_latency_ms && axes.length === 3 ? "latency_ms" : budget.max_params && !budget.max_macs ? "params" : "macs";
    const plotBox = h("div", {});
    const open = (point) => { location.hash = `#/builder?zoo=${search.zoo_id}&arch=${point.arch_id}`; };
    const narrow = window.matchMedia("(max-width: 760px)");
    const drawPlot = () => clear(plotBox, paretoPlot({ candidates, picks: search.picks || [], budget, cost: axis,
      metric: search.request.metric || "proxy_accuracy", onSelect: open, narrow: narrow.matches }));
    narrow.addEventListener("change", drawPlot);
    ctx.onLeave(() => narrow.removeEventListener("change", drawPlot));
    const toggle = h("div", { class: "segmented", role: "group", "aria-label": "Cost axis" },
      axes.map(([a, label]) => h("button", { type: "button", class: a === axis ? "on" : null, "aria-pressed": String(a === axis),
        "data-axis": a, onclick: (event) => {
          axis = a;
          toggle.querySelectorAll("button").forEach((b) => { b.classList.toggle("on", b === event.currentTarget); b.setAttribute("aria-pressed", String(b === event.currentTarget)); });
          drawPlot();
        } }, label)));
    drawPlot();
    clear(results,
      card("Score against cost", h("div", { class: "row spread" }, h("p", { class: "hint" }, "Hover a point for its numbers; click it to open it in the builder."), toggle), plotBox),
      card("Picks (best first)", search.picks?.length ? picksTable(ctx, search) : empty("No picks.")));
  }

  const head = h("div", {});
  const facts = h("div", {});
  function drawHead() {
    clear(head, pageHeader(h("span", {}, "Search ", h("span", { class: "mono" }, search.id)), badge(search.state)));
    clear(facts, definitionList([
      ["Zoo", h("a", { href: `#/zoos/${search.zoo_id}`, class: "mono" }, search.zoo_id)],
      ["Budget", budgetText(budget)],
      search.request.latency_table_id ? ["Latency table", h("a", { href: `#/latency-tables/${search.request.latency_table_id}`, class: "mono" }, search.request.latency_table_id)] : null,
      ["Strategy", `${search.request.strategy}, population ${search.request.population}, ${search.request.generations} generation(s), seed ${search.request.seed}`],
      ["Evaluated", search.evaluated !== null && search.evaluated !== undefined ? int(search.evaluated) : "–"],
      ["Started", when(search.created_at)],
    ]));
  }
  drawHead();
  const panel = search.job ? jobPanel(ctx, search.job, { title: "Search", async onFinish() {
    search = await get(`/v1/searches/${id}`);
    drawHead();
    drawResults();
  } }) : null;
  drawResults();
  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/searches" }, "Searches"), " / ", search.id),
    head,
    h("div", { class: "grid-2" }, card("Progress", panel || h("p", {}, "The job of this search is gone.")), card("Request", facts)),
    results);
}
