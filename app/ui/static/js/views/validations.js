// Validations: train a sample of a zoo's architectures and see how well every signal ranks them.

import { del, get, objectUrl, post } from "../api.js";
import { actionButton, clear, field, h, numberInput, select } from "../dom.js";
import { eta, int, metricName, num, pct, rho, when } from "../format.js";
import { ACTIVE, badge, card, definitionList, empty, errorBox, flash, formValues, loading, pageHeader, progressBar,
  table, watchJob } from "../ui.js";

const DESIGNS = [["uniform", "uniform: drawn by the paper's rule"], ["budget_band", "budget band: drawn, kept near a MACs target"]];

function createForm(zoos, chosen) {
  const message = h("div", { class: "form-message" });
  const design = select("design", DESIGNS, "uniform");
  const band = h("div", { class: "grid-3", hidden: true },
    field("Target MACs", numberInput("target_macs", "", { min: 1, placeholder: "e.g. 1000000" })),
    field("Tolerance", numberInput("tolerance", 0.1, { min: 0.01, max: 0.99, step: "any" }), "±10 % is 0.1."));
  design.addEventListener("change", () => {
    band.hidden = design.value !== "budget_band";
    band.querySelectorAll("input").forEach((i) => { i.disabled = band.hidden; });
  });
  band.querySelectorAll("input").forEach((i) => { i.disabled = true; });
  const form = h("form", { class: "stack", "data-form": "validation" },
    h("div", { class: "grid-3" },
      field("Zoo", select("zoo_id", zoos.map((z) => [z.id, `${z.id} (${z.space_name})`]), chosen)),
      field("Design", design),
      field("Architecture seed", numberInput("arch_seed", 0, { min: 0 }))),
    band,
    h("div", { class: "grid-3" },
      field("Architectures (k)", numberInput("k", 4, { min: 3, max: 100 }), "At least 4 for intervals."),
      field("Seeds per architecture", numberInput("seeds", 2, { min: 1, max: 5 }), "Two or more show the seed-to-seed ceiling."),
      field("Epochs", numberInput("epochs", 0.5, { min: 0.01, step: "any" }), "Of each training; fractions allowed.")),
    h("div", { class: "grid-3" },
      field("Batch size", numberInput("batch_size", "", { min: 1, placeholder: "the space's default" })),
      field("Learning rate", numberInput("lr", "", { min: 0, step: "any", placeholder: "default (0.1 per 128)" })),
      field("Flips", select("flip", [["", "default (on)"], ["true", "on"], ["false", "off (digits, text)"]], ""))),
    h("p", { class: "hint" }, "k × seeds trainings from scratch on the zoo's dataset, each its own job. "
      + "The small values filled in finish in well under a minute on a CPU, and say little: "
      + "a trustworthy answer needs 10–40 architectures and a few epochs (docs/validation.md)."),
    h("button", { type: "submit", class: "primary" }, "Start validation"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { zoo_id, design: name, k, seeds, arch_seed, target_macs, tolerance, epochs, batch_size, lr, flip } = formValues(form);
    const recipe = { epochs, batch_size, lr, flip: flip === undefined ? undefined : flip === "true" };
    const body = { design: name, k, seeds, arch_seed, recipe: JSON.parse(JSON.stringify(recipe)) };
    if (name === "budget_band") body.band = { target_macs, tolerance };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const validation = await post(`/v1/zoos/${zoo_id}/validations`, body);
      location.hash = `#/validations/${validation.id}`;
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function validationsView(ctx) {
  const zooFilter = ctx.query.get("zoo");
  const path = `/v1/validations?limit=200${zooFilter ? `&zoo_id=${encodeURIComponent(zooFilter)}` : ""}`;
  const [validations, zoos] = await Promise.all([get(path), get("/v1/zoos?limit=200")]);
  const ready = zoos.items.filter((z) => z.state === "ready");
  const list = h("div", {});
  function render(items) {
    clear(list, items.length ? table([
      ["Validation", (v) => h("a", { href: `#/validations/${v.id}`, class: "mono" }, v.id)],
      ["State", (v) => badge(v.state)],
      ["Zoo", (v) => h("a", { href: `#/zoos/${v.zoo_id}`, class: "mono" }, v.zoo_id)],
      ["Design", (v) => `${v.design.name}, ${v.architectures.length} × ${v.seeds.length} seeds`],
      ["Progress", (v) => progressBar(v.progress, "validation progress")],
      ["Trainings", (v) => `${v.trainings_done} / ${v.trainings_total}`, "num"],
      ["Started", (v) => when(v.created_at)],
    ], items) : empty(zooFilter ? "No validations of this zoo yet." : "No validations yet. A validation trains a few of a zoo's "
      + "architectures and tells you whether its scores rank them like training does, on your data."));
    return items.some((v) => ACTIVE.has(v.state));
  }
  if (render(validations.items)) ctx.poll(async () => render((await get(path)).items), 3000, false);
  const create = ready.length ? createForm(ready, zooFilter || ready[0].id)
    : empty("A validation runs on a ready zoo; you have none yet.", h("a", { class: "button primary", href: "#/zoos" }, "Create a zoo"));
  return h("div", { class: "page" },
    pageHeader("Validations", zooFilter ? h("a", { class: "button", href: "#/validations" }, "All zoos") : null),
    card("Can the scores be trusted on this data?", create),
    card(zooFilter ? `Validations of ${zooFilter}` : "Your validations", list));
}

const interval = (ci) => (ci ? `[${rho(ci[0])}, ${rho(ci[1])}]` : "–");

/** What an interval allows saying: above 0, below 0, or it covers 0. */
function reading(stats) {
  const ci = stats?.spearman_ci;
  if (!ci) return h("span", { class: "hint" }, "too few to tell (no interval)");
  if (ci[0] > 0) return h("span", { class: "good" }, "better than chance");
  if (ci[1] < 0) return h("span", { class: "bad" }, "reversed");
  return h("span", { class: "hint" }, "cannot tell from chance");
}

function signalsTable(report) {
  const names = Object.keys(report.signals);
  return h("div", { class: "signals" }, table([
    ["Signal", (n) => h("span", { class: n === report.primary ? "primary-signal" : null }, metricName(n), n === report.primary ? " (primary)" : "")],
    ["ρ vs accuracy", (n) => rho(report.signals[n].accuracy?.spearman), "num"],
    ["95 % interval", (n) => interval(report.signals[n].accuracy?.spearman_ci), "num"],
    ["reading", (n) => reading(report.signals[n].accuracy)],
    ["ρ vs −NLL", (n) => rho(report.signals[n].nll?.spearman), "num"],
    ["95 % interval", (n) => interval(report.signals[n].nll?.spearman_ci), "num"],
    ["Δρ proxy − signal [95 %]", (n) => (report.paired?.[n]?.accuracy
      ? `${rho(report.paired[n].accuracy.spearman)} ${interval(report.paired[n].accuracy.spearman_ci)}` : "(primary)"), "num"],
  ], names, { rowClass: (n) => `signal-row${n === report.primary ? " primary" : ""}` }));
}

function ceilingFacts(report) {
  const c = report.ceiling;
  if (!c) return h("p", { class: "hint" }, "One seed per architecture: no ceiling (two or more seeds show how reproducible training is).");
  const single = c.accuracy?.single_seed, projected = c.accuracy?.projected, noise = c.accuracy_noise || {};
  const pts = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} points`);
  return definitionList([
    single ? ["Two seeds agree at", `ρ = ${rho(single.spearman)} ${interval(single.spearman_ci)}`] : null,
    projected ? [`Means of ${c.projected_to_seeds} seeds would agree at`, `ρ = ${rho(projected.spearman)} ${interval(projected.spearman_ci)} (Spearman–Brown)`] : null,
    c.nll?.single_seed ? ["NLL, two seeds", `ρ = ${rho(c.nll.single_seed.spearman)} ${interval(c.nll.single_seed.spearman_ci)}`] : null,
    ["Seed noise of accuracy (sd)", pts(noise.noise_sd)],
    ["Spread of the architectures' means (sd)", pts(noise.arch_mean_sd)],
    ["Single-seed reliability", noise.reliability === null || noise.reliability === undefined ? "–" : num(noise.reliability, 2)],
  ]);
}

export async function validationView(ctx) {
  const [id] = ctx.params;
  let v = await get(`/v1/validations/${id}`);
  const head = h("div", {});
  const progressBox = h("div", {});
  const requestBox = h("div", {});
  const results = h("div", { class: "stack" });
  const trainingsBox = h("div", {});
  const plotBox = h("div", { class: "validation-plot" });
  let plotShown = false;

  function drawHead() {
    const active = ACTIVE.has(v.state);
    clear(head, pageHeader(h("span", {}, "Validation ", h("span", { class: "mono" }, v.id)), badge(v.state),
      active ? actionButton("Cancel", async () => {
        try { v = await post(`/v1/validations/${id}/cancel`); draw(); } catch (error) { flash(error.message); }
      }, { class: "danger", "data-action": "cancel" }) : null,
      !active ? actionButton("Delete", async () => {
        if (!window.confirm(`Delete validation ${v.id} and its plot? Its trainings stay cached in the zoo.`)) return;
        try {
          await del(`/v1/validations/${id}`);
          flash(`Deleted ${v.id}.`, "notice");
          location.hash = `#/validations?zoo=${v.zoo_id}`;
        } catch (error) { flash(error.message); }
      }, { class: "danger secondary", "data-action": "delete" }) : null));
  }

  function drawProgress() {
    const job = v.job;
    const live = job && job.state === "running" && job.eta_s !== null && job.eta_s !== undefined && !/left/.test(v.message) ? eta(job.eta_s) : "";
    clear(progressBox,
      progressBar(v.progress, "validation progress"),
      h("p", { class: "validation-count" }, h("strong", {}, `${v.trainings_done} / ${v.trainings_total}`), " trainings done"),
      h("p", { class: "job-message" }, v.message, live ? ` · ${live}` : ""),
      job ? h("p", { class: "hint" }, "Report job ", h("a", { href: `#/jobs/${job.id}`, class: "mono" }, job.id),
        ": it measures every signal and writes the report once the trainings are done.") : null);
  }

  function drawRequest() {
    const r = v.recipe;
    clear(requestBox, definitionList([
      ["Zoo", h("a", { href: `#/zoos/${v.zoo_id}`, class: "mono" }, v.zoo_id)],
      ["Design", v.design.name === "budget_band" && v.request.band
        ? `budget band: ${int(v.request.band.target_macs)} MACs ± ${pct(v.request.band.tolerance, 0)}` : v.design.name],
      ["Architectures", `${v.architectures.length}, seeds ${v.seeds.join(", ")}`],
      ["Recipe", `${r.epochs} epoch(s), batch ${r.batch_size}, lr ${r.lr}, flips ${r.flip ? "on" : "off"}`],
      ["Started", when(v.created_at)],
    ]));
  }

  function drawTrainings() {
    const macs = new Map(v.architectures.map((a) => [a.arch_id, a.macs]));
    clear(trainingsBox, v.trainings?.length ? table([
      ["Architecture", (t) => h("a", { href: `#/builder?zoo=${v.zoo_id}&arch=${t.arch_id}`, class: "mono" }, t.arch_id)],
      ["MACs", (t) => int(macs.get(t.arch_id)), "num"],
      ["Seed", (t) => String(t.seed), "num"],
      ["State", (t) => badge(t.state)],
      ["Test accuracy", (t) => pct(t.test_accuracy), "num"],
      ["Test NLL", (t) => num(t.test_nll, 3), "num"],
      ["Seconds", (t) => (t.seconds === null || t.seconds === undefined ? "–" : t.seconds.toFixed(1)), "num"],
      ["", (t) => (t.state !== "done" ? "" : t.trained_count ? (t.resumed_from_step ? `resumed at step ${t.resumed_from_step}` : "") : "from the cache")],
    ], v.trainings, { rowClass: () => "training-row" }) : empty("No trainings."));
  }

  function drawResults() {
    if (v.state !== "succeeded" || !v.report) {
      clear(results, v.state === "failed" || v.state === "cancelled"
        ? card("Report", empty(`This validation ${v.state}; it has no report.`))
        : card("Report", h("p", { class: "hint" }, "The verdict, every signal's rank correlation and the plot appear when every training is done.")));
      return;
    }
    const report = v.report;
    if (!plotShown && v.plot_url) {
      plotShown = true;
      clear(plotBox, loading("Loading the plot…"));
      objectUrl(v.plot_url).then((url) => {
        ctx.onLeave(() => URL.revokeObjectURL(url));
        clear(plotBox, h("img", { src: url, alt: "ρ of every signal with its interval, and the trained accuracy of each architecture against each signal" }));
      }).catch((error) => clear(plotBox, errorBox(error)));
    }
    clear(results,
      card("Verdict", h("p", { class: "verdict" }, v.verdict)),
      card(`Signals: Spearman ρ against trained accuracy and −NLL (${report.n_archs} architectures, seed means)`,
        h("p", { class: "hint" }, "Oriented so that higher ρ means “ranks like training” (KD loss is negated). "
          + "Only an interval above 0 says a signal ranks better than chance; only a paired Δρ interval that excludes 0 "
          + "says two signals differ."),
        signalsTable(report)),
      card("Ceiling: how reproducible training is", ceilingFacts(report)),
      card("Plot", plotBox));
  }

  function draw() {
    drawHead();
    drawProgress();
    drawRequest();
    drawTrainings();
    drawResults();
  }
  draw();

  // Live: the report job's event stream moves with every finished training (even while it is
  // queued behind them); each event reloads the validation. Polled when it has no job.
  let loading_ = false, again = false;
  async function reload() {
    if (loading_) { again = true; return; }
    loading_ = true;
    try {
      do {
        again = false;
        v = await get(`/v1/validations/${id}`);
        if (ctx.alive) draw();
      } while (again && ctx.alive);
    } catch (error) {
      flash(error.message);
    } finally {
      loading_ = false;
    }
  }
  if (ACTIVE.has(v.state)) {
    if (v.job) {
      watchJob(ctx, v.job.id, {
        handle: (job) => { reload(); return ACTIVE.has(job.state); },
        onError: (_error, fatal) => fatal && ctx.poll(async () => { await reload(); return ACTIVE.has(v.state); }, 2000, false),
      });
    } else {
      ctx.poll(async () => { await reload(); return ACTIVE.has(v.state); }, 2000, false);
    }
  }

  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/validations" }, "Validations"), " / ", v.id),
    head,
    h("div", { class: "grid-2" }, card("Progress", progressBox), card("Request", requestBox)),
    results,
    card("Trainings", trainingsBox));
}
