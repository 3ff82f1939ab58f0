// The architecture builder: depth and expansion ratio per stage (or an id), live cost, scores, comparison.

import { get, post, request } from "../api.js";
import { actionButton, clear, field, h, select } from "../dom.js";
import { int, metricName, ms, num, pct } from "../format.js";
import { card, empty, errorBox, jobPanel, loading, pageHeader, table } from "../ui.js";
import { tableLabel, tablesFor } from "./latency.js";

const EXTRA_METRICS = ["kd_loss", "heldout_accuracy", "synflow", "naswot", "gradnorm", "snip", "fisher", "l2norm"];
const COMPARE_KEY = "blockzoo.compare";

/** "d42314-e6642.a8.442.6.888a" -> {depths, expand}; digits are base 36 (a = 10). */
export function parseArchId(id) {
  const match = /^d([0-9a-z]+)-e([0-9a-z.]+)$/.exec(id);
  if (!match) return null;
  const depths = [...match[1]].map((c) => parseInt(c, 36));
  const expand = match[2].split(".").map((part) => [...part].map((c) => parseInt(c, 36)));
  return expand.length === depths.length ? { depths, expand } : null;
}

/**
 * The latency a table predicts for `arch`, as the server does (blockzoo.latency.LatencyTable.predict):
 * prefix + head + one block per stage (keyed by its block code), times the table's scale.
 */
export function predictLatency(t, arch) {
  let total = t.prefix_ms + t.head_ms;
  arch.expand.forEach((expand, m) => { total += t.blocks[`s${m + 1}`][expand.map((v) => v.toString(36)).join("")]; });
  return t.scale * total;
}

export const archId = (arch) => `d${arch.depths.map((d) => d.toString(36)).join("")}-e${arch.expand.map((e) => e.map((v) => v.toString(36)).join("")).join(".")}`;

function loadCompared(zooId) {
  try { return (JSON.parse(sessionStorage.getItem(COMPARE_KEY)) || {})[zooId] || []; } catch { return []; }
}

function saveCompared(zooId, items) {
  let all = {};
  try { all = JSON.parse(sessionStorage.getItem(COMPARE_KEY)) || {}; } catch { /* a fresh start */ }
  all[zooId] = items;
  sessionStorage.setItem(COMPARE_KEY, JSON.stringify(all));
}

export async function builderView(ctx) {
  const zoos = (await get("/v1/zoos?limit=200")).items.filter((z) => z.state === "ready");
  if (!zoos.length) {
    return h("div", { class: "page" }, pageHeader("Architecture builder"),
      card(null, empty("The builder scores architectures on a ready zoo, and you have none yet.",
        h("a", { class: "button primary", href: "#/zoos" }, "Create a zoo"))));
  }
  const zoo = zoos.find((z) => z.id === ctx.query.get("zoo")) || zoos[0];
  let space = null;
  try { space = await get(`/v1/spaces/${encodeURIComponent(zoo.space_name)}`); } catch { /* a custom space: ids only */ }
  const tables = tablesFor((await get("/v1/latency-tables?limit=200").catch(() => ({ items: [] }))).items, zoo);
  let latencyTable = null; // the chosen table with its entries (include_table), for the live prediction
  const tablePicker = select("latency_table", [["", tables.length ? "none" : "none fits this zoo"], ...tables.map((t) => [t.id, tableLabel(t)])],
    ctx.query.get("latency") || "");
  tablePicker.setAttribute("aria-label", "Latency table");

  let arch = parseArchId(ctx.query.get("arch") || "") || (space ? structuredClone(space.smallest.config) : null);
  let compared = loadCompared(zoo.id);
  const stages = h("div", { class: "stages" });
  const costBox = h("div", { class: "cost", "aria-live": "polite" });
  const idInput = h("input", { type: "text", name: "arch_id", class: "mono", spellcheck: false, "aria-label": "Architecture id" });
  const idMessage = h("div", { class: "form-message" });
  const scoreBox = h("div", {});
  const compareBox = h("div", {});
  const metricBoxes = EXTRA_METRICS.map((m) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "metric", value: m, checked: m === "kd_loss" }), metricName(m)));

  let costTimer = null, costSeq = 0;
  function updateCost() {
    clearTimeout(costTimer);
    costTimer = setTimeout(async () => {
      const seq = ++costSeq;
      try {
        const body = await post("/v1/cost", { space: zoo.space_name, architectures: [archId(arch)],
          in_channels: zoo.in_channels, num_classes: zoo.num_classes });
        if (seq !== costSeq) return;
        const item = body.items[0];
        clear(costBox, h("div", { class: "stat" }, h("span", { class: "stat-label" }, "MACs"), h("span", { class: "stat-value", "data-stat": "macs" }, int(item.macs))),
          h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Params"), h("span", { class: "stat-value", "data-stat": "params" }, int(item.params))),
          latencyTable ? h("div", { class: "stat", title: `predicted by ${latencyTable.name} (${latencyTable.device})` },
            h("span", { class: "stat-label" }, "Latency"), h("span", { class: "stat-value", "data-stat": "latency" }, ms(predictLatency(latencyTable.table, arch)))) : null);
      } catch (error) {
        if (seq === costSeq) clear(costBox, errorBox(error));
      }
    }, 120);
  }

  function setArch(next) {
    arch = next;
    idInput.value = archId(arch);
    clear(idMessage);
    const scored = compared.find((c) => c.arch_id === idInput.value);
    if (scored) showScore(scored); else clear(scoreBox);
    drawStages();
    updateCost();
    history.replaceState(null, "", `#/builder?zoo=${zoo.id}&arch=${archId(arch)}${tablePicker.value ? `&latency=${tablePicker.value}` : ""}`);
  }

  async function chooseTable() {
    const id = tablePicker.value;
    try {
      latencyTable = id ? await get(`/v1/latency-tables/${id}?include_table=true`) : null;
    } catch (error) {
      latencyTable = null;
      clear(costBox, errorBox(error));
      return;
    }
    if (arch) setArch(arch);
  }
  tablePicker.addEventListener("change", chooseTable);

  function drawStages() {
    if (!space) { clear(stages, h("p", { class: "hint" }, "This zoo's space is custom: paste architecture ids below.")); return; }
    const d = space.definition;
    clear(stages, arch.depths.map((depth, m) => h("div", { class: "stage", "data-stage": m },
      h("div", { class: "stage-name" }, h("strong", {}, `Stage ${m + 1}`),
        h("span", { class: "hint" }, ` ${d.widths[m]} channels, stride ${d.strides[m]}${d.use_se[m] ? ", SE" : ""}`)),
      h("div", { class: "segmented", role: "group", "aria-label": `Stage ${m + 1} depth` },
        space.depth_choices.map((choice) => h("button", { type: "button", class: choice === depth ? "on" : null,
          "aria-pressed": String(choice === depth), title: `depth ${choice}`,
          onclick: () => {
            const expand = arch.expand.map((e) => [...e]);
            const last = expand[m][expand[m].length - 1];
            expand[m] = Array.from({ length: choice }, (_, i) => expand[m][i] ?? last);
            setArch({ depths: arch.depths.map((v, i) => (i === m ? choice : v)), expand });
          } }, `${choice}`))),
      h("div", { class: "layers" }, arch.expand[m].map((ratio, layer) => {
        const control = select(`e${m}.${layer}`, space.expand_choices.map((e) => [e, `×${e}`]), ratio);
        control.setAttribute("aria-label", `Stage ${m + 1} layer ${layer + 1} expansion ratio`);
        control.addEventListener("change", () => {
          const expand = arch.expand.map((e) => [...e]);
          expand[m][layer] = Number(control.value);
          setArch({ depths: arch.depths, expand });
        });
        return control;
      })))));
  }

  async function loadId() {
    const text = idInput.value.trim();
    clear(idMessage);
    try {
      const body = await post("/v1/cost", { space: zoo.space_name, architectures: [text], in_channels: zoo.in_channels,
        num_classes: zoo.num_classes });
      setArch(parseArchId(body.items[0].arch_id));
    } catch (error) {
      clear(idMessage, errorBox(error));
    }
  }
  idInput.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); loadId(); } });

  function drawCompared() {
    saveCompared(zoo.id, compared);
    if (!compared.length) { clear(compareBox, empty("Scored architectures are listed here, side by side.")); return; }
    const metrics = [...new Set(compared.flatMap((c) => Object.keys(c.metrics || {})))];
    const best = Math.max(...compared.map((c) => c.proxy_accuracy ?? -1));
    clear(compareBox, table([
      ["Architecture", (c) => h("a", { href: `#/builder?zoo=${zoo.id}&arch=${c.arch_id}`, class: "mono" }, c.arch_id)],
      ["Proxy accuracy", (c) => h("span", { class: c.proxy_accuracy === best ? "best" : null }, pct(c.proxy_accuracy)), "num"],
      ["MACs", (c) => int(c.macs), "num"],
      ["Params", (c) => int(c.params), "num"],
      ...(compared.some((c) => c.latency_ms !== null && c.latency_ms !== undefined) ? [["Latency", (c) => ms(c.latency_ms), "num"]] : []),
      ...metrics.map((m) => [metricName(m), (c) => num(c.metrics?.[m]), "num"]),
      ["", (c) => h("button", { type: "button", class: "link", onclick: () => { compared = compared.filter((x) => x !== c); drawCompared(); } }, "remove")],
    ], compared));
  }

  function addResults(items) {
    for (const item of items) compared = [item, ...compared.filter((c) => c.arch_id !== item.arch_id)];
    drawCompared();
    showScore(items[0]);
  }

  function showScore(item) {
    clear(scoreBox, h("div", { class: "score-result", "data-arch": item.arch_id },
      h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Proxy accuracy"), h("span", { class: "stat-value", "data-stat": "proxy" }, pct(item.proxy_accuracy))),
      item.latency_ms !== null && item.latency_ms !== undefined
        ? h("div", { class: "stat" }, h("span", { class: "stat-label" }, "Latency"), h("span", { class: "stat-value", "data-stat": "scored-latency" }, ms(item.latency_ms))) : null,
      Object.entries(item.metrics || {}).map(([m, v]) => h("div", { class: "stat" }, h("span", { class: "stat-label" }, metricName(m)), h("span", { class: "stat-value" }, num(v))))));
  }

  const scoreButton = actionButton("Score", async () => {
    const metrics = metricBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    clear(scoreBox, loading("Scoring (missing blocks are distilled first)…"));
    try {
      const { status, body } = await request("POST", `/v1/zoos/${zoo.id}/scores`, { architectures: [archId(arch)], metrics, wait: 20,
        ...(tablePicker.value ? { latency_table_id: tablePicker.value } : {}) });
      if (status === 200) return addResults(body.items);
      clear(scoreBox, jobPanel(ctx, body.job, { title: "Scoring", onFinish: (job) => {
        if (job.state === "succeeded") addResults(job.result.items);
      } }));
    } catch (error) {
      clear(scoreBox, errorBox(error));
    }
  }, { class: "primary", "data-action": "score" });

  const zooPicker = select("zoo", zoos.map((z) => [z.id, `${z.id} (${z.space_name})`]), zoo.id);
  zooPicker.addEventListener("change", () => { location.hash = `#/builder?zoo=${zooPicker.value}`; });

  if (tablePicker.value) latencyTable = await get(`/v1/latency-tables/${tablePicker.value}?include_table=true`).catch(() => null);
  if (arch) setArch(arch); else drawStages();
  drawCompared();
  const presets = space ? h("div", { class: "row" },
    h("button", { type: "button", class: "small secondary", onclick: () => setArch(structuredClone(space.smallest.config)) }, "Smallest"),
    h("button", { type: "button", class: "small secondary", onclick: () => setArch(structuredClone(space.reference.config)) }, "Largest (reference)"),
    h("button", { type: "button", class: "small secondary", onclick: () => {
      const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
      const depths = arch.depths.map(() => pick(space.depth_choices));
      setArch({ depths, expand: depths.map((d) => Array.from({ length: d }, () => pick(space.expand_choices))) });
    } }, "Random")) : null;

  return h("div", { class: "page" }, pageHeader("Architecture builder"),
    h("div", { class: "builder" },
      card("Architecture",
        field("Zoo", zooPicker),
        presets, stages),
      h("div", { class: "stack" },
        card("Id and cost", h("div", { class: "stack" },
          field("Architecture id", h("div", { class: "row" }, idInput, h("button", { type: "button", class: "secondary", onclick: loadId }, "Load")),
            "Paste an id (e.g. from a search) and press Load."),
          idMessage,
          field("Latency table", tablePicker, tables.length ? "Predicts the latency on the table's device, as you change the architecture."
            : h("span", {}, "None fits this zoo's space and shapes: ", h("a", { href: `#/latency-tables?zoo=${zoo.id}` }, "measure or upload one"), ".")),
          costBox)),
        card("Score", h("div", { class: "checks" }, metricBoxes), scoreButton, scoreBox))),
    card("Compare", compareBox));
}
