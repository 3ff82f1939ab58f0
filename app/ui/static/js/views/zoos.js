// Zoos: create form, list, and a zoo's page with its live build (progress, blocks, training curve).

import { del, get, post } from "../api.js";
import { lineChart } from "../charts.js";
import { actionButton, clear, field, h, numberInput, select } from "../dom.js";
import { int, pct, when } from "../format.js";
import { badge, card, definitionList, empty, errorBox, flash, formValues, jobPanel, pageHeader, refreshView, table } from "../ui.js";

function recipeFrom(values, prefix) {
  const recipe = {};
  for (const [key, value] of Object.entries(values)) if (key.startsWith(prefix)) recipe[key.slice(prefix.length)] = value;
  return recipe;
}

function createForm(datasets, spaces, chosenDataset) {
  const message = h("div", { class: "form-message" });
  const form = h("form", { class: "stack", "data-form": "zoo" },
    h("div", { class: "grid-3" },
      field("Dataset", select("dataset_id", datasets.map((d) => [d.id, `${d.name} (${int(d.num_train)} train)`]), chosenDataset)),
      field("Search space", select("space", spaces.map((s) => [s.name, s.name]), "mbv3-tiny")),
      field("Build", select("build", [["lazy", "lazy: blocks on demand"], ["eager", "eager: every block now"]], "lazy"))),
    h("fieldset", {}, h("legend", {}, "Reference training"),
      h("div", { class: "grid-3" },
        field("Epochs", numberInput("ref.epochs", 1, { min: 0.01, step: "any" })),
        field("Batch size", numberInput("ref.batch_size", 64, { min: 1 })),
        field("Learning rate", numberInput("ref.lr", "", { min: 0, step: "any", placeholder: "default" })))),
    h("fieldset", {}, h("legend", {}, "Block distillation"),
      h("div", { class: "grid-3" },
        field("KD batches (T)", numberInput("kd.batches", 4, { min: 0 })),
        field("Batch size", numberInput("kd.batch_size", 32, { min: 1 })),
        field("Held-out batches", numberInput("kd.heldout_batches", 1, { min: 0 })))),
    h("p", { class: "hint" }, "Empty fields take the defaults. Small values (as filled in) build in under a minute on a CPU."),
    h("button", { type: "submit", class: "primary" }, "Create zoo"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const created = await post("/v1/zoos", {
        dataset_id: values.dataset_id, space: values.space, build: values.build,
        reference: recipeFrom(values, "ref."), distill: recipeFrom(values, "kd."),
      });
      location.hash = `#/zoos/${created.zoo.id}`;
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function zoosView(ctx) {
  const [zoos, datasets, spaces] = await Promise.all([get("/v1/zoos?limit=200"), get("/v1/datasets?limit=200"),
    get("/v1/spaces")]);
  const names = new Map(datasets.items.map((d) => [d.id, d.name]));
  const list = h("div", {});
  function renderList(items) {
    clear(list, items.length ? table([
      ["Zoo", (z) => h("a", { href: `#/zoos/${z.id}`, class: "mono" }, z.id)],
      ["State", (z) => badge(z.state)],
      ["Dataset", (z) => names.get(z.dataset_id) || z.dataset_id],
      ["Space", (z) => z.space_name],
      ["Build", (z) => z.build],
      ["Reference test acc.", (z) => pct(z.reference_metrics?.test_accuracy), "num"],
      ["Blocks", (z) => int(z.blocks_stored), "num"],
      ["Created", (z) => when(z.created_at)],
    ], items) : empty("No zoos yet. A zoo is a trained reference network and its distilled blocks: create one below."));
    return items.some((z) => z.state === "building");
  }
  if (renderList(zoos.items)) ctx.poll(async () => renderList((await get("/v1/zoos?limit=200")).items), 3000, false);
  const create = datasets.items.length
    ? createForm(datasets.items, spaces.items, ctx.query.get("dataset") || datasets.items[0].id)
    : empty("Import a dataset first.", h("a", { class: "button primary", href: "#/datasets" }, "Go to datasets"));
  return h("div", { class: "page" }, pageHeader("Zoos"), card("Your zoos", list), card("Create a zoo", create));
}

const STEP = /step (\d+)\/(\d+) loss ([\d.]+)/;

export async function zooView(ctx) {
  const [id] = ctx.params;
  let zoo = await get(`/v1/zoos/${id}`);
  const [dataset, space] = await Promise.all([
    get(`/v1/datasets/${zoo.dataset_id}`).catch(() => null), get(`/v1/spaces/${zoo.space_name}`).catch(() => null)]);
  const totalBlocks = space ? space.num_stages * space.blocks_per_stage : null;
  const curve = [];
  const curveBox = h("div", {});
  const facts = h("div", {});
  const head = h("div", {});
  const actions = h("div", { class: "page-actions" });

  function drawCurve() {
    if (curve.length >= 2) {
      clear(curveBox, lineChart(curve, { xLabel: "step", yLabel: "training loss" }),
        h("p", { class: "hint" }, "Sampled from the build job's progress while this page is open."));
    }
  }

  function render() {
    const m = zoo.reference_metrics || {};
    clear(head, pageHeader(h("span", {}, "Zoo ", h("span", { class: "mono" }, zoo.id)), badge(zoo.state)));
    clear(facts, definitionList([
      ["Dataset", dataset ? h("a", { href: `#/datasets/${dataset.id}` }, dataset.name) : zoo.dataset_id],
      ["Space", `${zoo.space_name} (${zoo.in_channels} input channel${zoo.in_channels > 1 ? "s" : ""}, ${zoo.num_classes} classes)`],
      ["Build", zoo.build === "lazy" ? "lazy: blocks are distilled when an architecture needs them" : "eager: every block"],
      ["Blocks stored", totalBlocks ? `${int(zoo.blocks_stored)} of ${int(totalBlocks)} (${pct(zoo.blocks_stored / totalBlocks)})` : int(zoo.blocks_stored)],
      ["Reference test accuracy", m.test_accuracy !== undefined ? pct(m.test_accuracy) : zoo.state === "building" ? "training…" : "–"],
      m.train_accuracy !== undefined ? ["Reference train accuracy", pct(m.train_accuracy)] : null,
      m.steps !== undefined ? ["Reference training", `${int(m.steps)} steps in ${Number(m.seconds).toFixed(1)} s`] : null,
      zoo.error ? ["Error", h("span", { class: "job-error" }, zoo.error)] : null,
      ["Created", when(zoo.created_at)],
    ]));
    const ready = zoo.state === "ready";
    // A failed build (also a cancelled one) resumes from what is on disk: the reference (or its
    // checkpoint) and every distilled block are kept. Not for a zoo that never had its reference.
    const resumable = zoo.state === "failed" && zoo.build_job_id;
    clear(actions,
      ready ? h("a", { class: "button primary", href: `#/builder?zoo=${zoo.id}` }, "Score architectures") : null,
      ready ? h("a", { class: "button", href: `#/searches?zoo=${zoo.id}` }, "Search under a budget") : null,
      ready ? h("a", { class: "button", href: `#/validations?zoo=${zoo.id}` }, "Validate the scores") : null,
      resumable ? actionButton("Resume build", async () => {
        try {
          await post(`/v1/zoos/${zoo.id}/resume`);
          flash("Build resumed: what was trained and distilled before is kept.", "notice");
          refreshView();
        } catch (error) { flash(error.message); }
      }, { class: "primary", "data-action": "resume" }) : null,
      actionButton("Delete", async () => {
        if (!window.confirm(`Delete zoo ${zoo.id} and its files?`)) return;
        try { await del(`/v1/zoos/${zoo.id}`); location.hash = "#/zoos"; } catch (error) { flash(error.message); }
      }, { class: "danger secondary" }));
  }
  render();

  const build = zoo.build_job_id ? jobPanel(ctx, zoo.build_job_id, {
    title: "Build",
    onUpdate(job) {
      const match = STEP.exec(job.message || "");
      if (match && job.state === "running") {
        const step = Number(match[1]);
        if (!curve.length || curve[curve.length - 1].x !== step) { curve.push({ x: step, y: Number(match[3]) }); drawCurve(); }
      }
    },
    async onFinish() { zoo = await get(`/v1/zoos/${id}`); render(); },
  }) : h("p", { class: "hint" }, zoo.state === "needs_reference"
    ? `Waiting for the reference weights: PUT /v1/zoos/${zoo.id}/reference (see the API docs).` : "No build job.");
  if (zoo.state === "building") {
    ctx.poll(async () => { zoo = await get(`/v1/zoos/${id}`); render(); return zoo.state === "building"; }, 2000, false);
  }

  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/zoos" }, "Zoos"), " / ", zoo.id),
    head, actions,
    h("div", { class: "grid-2" }, card("Build", build, curveBox), card("Reference and blocks", facts)),
    h("div", { class: "grid-2" },
      card("Reference recipe", h("pre", { class: "code" }, JSON.stringify(zoo.reference_recipe, null, 2))),
      card("Distillation recipe", h("pre", { class: "code" }, JSON.stringify(zoo.distill_recipe, null, 2)))));
}
