// Fine-tunes: list with live progress, a fine-tune's page with its result and the weights to download.

import { download, get } from "../api.js";
import { actionButton, clear, h } from "../dom.js";
import { int, pct, when } from "../format.js";
import { ACTIVE, badge, card, definitionList, empty, flash, jobPanel, pageHeader, progressBar, table } from "../ui.js";

function downloadButton(finetune) {
  return actionButton("Download weights", async () => {
    try {
      const { name } = await download(`/v1/finetunes/${finetune.id}/weights`, `${finetune.arch_id}.safetensors`);
      flash(`Saved ${name}.`, "notice");
    } catch (error) { flash(error.message); }
  }, { class: "small secondary", "data-action": "download" });
}

export async function finetunesView(ctx) {
  const list = h("div", {});
  function render(page) {
    clear(list, page.items.length ? table([
      ["Fine-tune", (f) => h("a", { href: `#/finetunes/${f.id}`, class: "mono" }, f.id)],
      ["Architecture", (f) => h("span", { class: "mono" }, f.arch_id)],
      ["Init", (f) => f.init],
      ["State", (f) => badge(f.state)],
      ["Progress", (f) => progressBar(f.state === "succeeded" ? 1 : f.progress)],
      ["Test accuracy", (f) => (f.result ? `${pct(f.result.initial_test_accuracy)} → ${pct(f.result.test_accuracy)}` : "–"), "num"],
      ["", (f) => (f.state === "succeeded" ? downloadButton(f) : null)],
    ], page.items) : empty("No fine-tunes yet. Start one from a search's picks.", h("a", { class: "button", href: "#/searches" }, "Go to searches")));
    return page.items.some((f) => ACTIVE.has(f.state));
  }
  if (render(await get("/v1/finetunes?limit=200"))) ctx.poll(async () => render(await get("/v1/finetunes?limit=200")), 2000, false);
  return h("div", { class: "page" }, pageHeader("Fine-tunes"), card(null, list));
}

export async function finetuneView(ctx) {
  const [id] = ctx.params;
  let finetune = await get(`/v1/finetunes/${id}`);
  const facts = h("div", {});
  function render() {
    const r = finetune.result;
    clear(facts, definitionList([
      ["Architecture", h("a", { href: `#/builder?zoo=${finetune.zoo_id}&arch=${finetune.arch_id}`, class: "mono" }, finetune.arch_id)],
      ["Zoo", h("a", { href: `#/zoos/${finetune.zoo_id}`, class: "mono" }, finetune.zoo_id)],
      ["Init", finetune.init],
      ["MACs / params", `${int(finetune.macs)} / ${int(finetune.params)}`],
      ["Recipe", h("span", { class: "mono" }, JSON.stringify(finetune.recipe))],
      r ? ["Test accuracy", `${pct(r.initial_test_accuracy)} before, ${pct(r.test_accuracy)} after`] : null,
      r ? ["Training", `${int(r.steps)} steps in ${r.seconds.toFixed(1)} s`] : null,
      r ? ["Weights", h("span", {}, `${int(r.bytes)} bytes `, downloadButton(finetune))] : null,
      ["Created", when(finetune.created_at)],
    ]));
  }
  render();
  const panel = finetune.job ? jobPanel(ctx, finetune.job, { title: "Fine-tune", async onFinish() {
    finetune = await get(`/v1/finetunes/${id}`);
    render();
  } }) : h("p", {}, `This fine-tune ${finetune.state}.`);
  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/finetunes" }, "Fine-tunes"), " / ", finetune.id),
    pageHeader(h("span", {}, "Fine-tune ", h("span", { class: "mono" }, finetune.id))),
    h("div", { class: "grid-2" }, card("Progress", panel), card("Details", facts)));
}
