// Latency tables: list, upload a measured table, have the server measure one, a table's page.

import { del, get, post, postFile } from "../api.js";
import { actionButton, clear, field, h, numberInput, select } from "../dom.js";
import { int, ms, pct, when } from "../format.js";
import { badge, card, definitionList, empty, errorBox, flash, formValues, jobPanel, pageHeader, refreshView, table } from "../ui.js";

const TIMINGS = {
  standard: {},  // the core's defaults: 5 warm-up runs, then the minimum of 5 interleaved rounds of 5
  quick: { warmup: 1, repeats: 1, rounds: 1 },
};

/** Ready tables whose space and shapes fit the zoo (what scores and searches accept). */
export function tablesFor(tables, zoo) {
  return tables.filter((t) => t.state === "ready" && t.space_name === zoo.space_name
    && t.in_channels === zoo.in_channels && t.num_classes === zoo.num_classes);
}

export const tableLabel = (t) => `${t.name} (${t.device || "?"}, batch ${t.batch_size}, ${ms(t.fastest_ms)}–${ms(t.largest_ms)})`;

function uploadForm(onUploaded) {
  const message = h("div", { class: "form-message" });
  const form = h("form", { class: "stack", "data-form": "latency-upload" },
    field("Table file", h("input", { type: "file", name: "file", accept: ".json,application/json", required: true }),
      "The JSON that `blockzoo latency measure --out table.json` wrote on the target device."),
    field("Name", h("input", { type: "text", name: "name", placeholder: "from the table", maxlength: 200 })),
    h("button", { type: "submit", class: "primary" }, "Upload"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { file, name } = formValues(form);
    if (!file) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const row = await postFile(`/v1/latency-tables${name ? `?name=${encodeURIComponent(name)}` : ""}`, file, "application/json");
      form.reset();
      flash(`Uploaded ${row.name}.`, "notice");
      onUploaded(row);
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function measureForm(spaces, zoos, chosenZoo) {
  const message = h("div", { class: "form-message" });
  const space = select("space", spaces.map((s) => [s.name, s.name]), "mbv3-tiny");
  const inChannels = numberInput("in_channels", 3, { min: 1 });
  const numClasses = numberInput("num_classes", 10, { min: 1 });
  const fill = (zoo) => {
    if (!zoo) return;
    if (spaces.some((s) => s.name === zoo.space_name)) space.value = zoo.space_name;
    inChannels.value = zoo.in_channels;
    numClasses.value = zoo.num_classes;
  };
  const zooPicker = select("from_zoo", [["", "—"], ...zoos.map((z) => [z.id, `${z.id} (${z.space_name}, ${z.in_channels} ch, ${z.num_classes} classes)`])],
    chosenZoo?.id || "");
  zooPicker.addEventListener("change", () => fill(zoos.find((z) => z.id === zooPicker.value)));
  fill(chosenZoo);
  const form = h("form", { class: "stack", "data-form": "latency-measure" },
    field("Shapes of a zoo", zooPicker, "Fills in the space, input channels and classes of a zoo you will search."),
    h("div", { class: "grid-3" },
      field("Search space", space),
      field("Input channels", inChannels),
      field("Classes", numClasses)),
    h("div", { class: "grid-3" },
      field("Batch size", numberInput("batch_size", 1, { min: 1 })),
      field("Calibration networks", numberInput("architectures", 20, { min: 0, max: 1000 }),
        "Timed end to end to fit the scale (0: plain sums, which run low)."),
      field("Timing", select("timing", [["standard", "standard (5 rounds of 5 runs)"], ["quick", "quick (1 run per block)"]], "standard"))),
    field("Name", h("input", { type: "text", name: "name", placeholder: "from the request", maxlength: 200 })),
    h("p", { class: "hint" }, "The server's worker times every block of the space on its own device (CPU here unless it has a GPU): "
      + "useful when the server is the deployment hardware. Otherwise measure on the device and upload the file."),
    h("button", { type: "submit", class: "primary" }, "Measure on the server"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { timing, name, from_zoo: _zoo, ...rest } = formValues(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    try {
      const created = await post("/v1/latency-tables/measure", { ...rest, timing: TIMINGS[timing] || {}, ...(name ? { name } : {}) });
      location.hash = `#/latency-tables/${created.table.id}`;
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function latencyTablesView(ctx) {
  const [tables, spaces, zoos] = await Promise.all([get("/v1/latency-tables?limit=200"), get("/v1/spaces"), get("/v1/zoos?limit=200")]);
  const list = h("div", {});
  function render(items) {
    clear(list, items.length ? table([
      ["Name", (t) => h("a", { href: `#/latency-tables/${t.id}` }, t.name)],
      ["State", (t) => badge(t.state)],
      ["Space", (t) => t.space_name],
      ["Input / classes / batch", (t) => `${t.in_channels} ch / ${t.num_classes} / ${t.batch_size}`],
      ["Device", (t) => t.device || "–"],
      ["Blocks", (t) => int(t.blocks), "num"],
      ["Predicted", (t) => (t.fastest_ms ? `${ms(t.fastest_ms)} – ${ms(t.largest_ms)}` : "–"), "num"],
      ["Added", (t) => when(t.created_at)],
    ], items) : empty("No latency tables yet. A table of the device that will run the network gives latency budgets to searches: "
      + "measure one on the device and upload it, or let the server measure one below."));
    return items.some((t) => t.state === "measuring");
  }
  if (render(tables.items)) ctx.poll(async () => render((await get("/v1/latency-tables?limit=200")).items), 2000, false);
  const ready = zoos.items.filter((z) => z.state === "ready");
  const chosen = ready.find((z) => z.id === ctx.query.get("zoo")) || ready[0];
  return h("div", { class: "page" }, pageHeader("Latency tables"),
    card("Your tables", list),
    h("div", { class: "grid-2" },
      card("Measure on the server", measureForm(spaces.items, ready, chosen)),
      card("Upload a table", uploadForm((row) => { location.hash = `#/latency-tables/${row.id}`; }))));
}

export async function latencyTableView(ctx) {
  const [id] = ctx.params;
  const row = await get(`/v1/latency-tables/${id}?include_table=true`);
  const t = row.table;
  const calibration = t?.calibration;
  const perStage = t ? Object.entries(t.blocks).map(([stage, blocks]) => `${stage} ${int(Object.keys(blocks).length)}`).join(", ") : null;
  const panel = row.job_id && row.state === "measuring"
    ? card("Measuring", jobPanel(ctx, row.job_id, { title: "Measure", onFinish: () => refreshView() })) : null;
  const zoos = row.state === "ready" ? (await get("/v1/zoos?limit=200")).items.filter((z) => z.state === "ready"
    && z.space_name === row.space_name && z.in_channels === row.in_channels && z.num_classes === row.num_classes) : [];

  const remove = actionButton("Delete", async () => {
    if (!window.confirm(`Delete latency table ${row.name}?`)) return;
    try {
      await del(`/v1/latency-tables/${id}`);
      flash(`Deleted ${row.name}.`, "notice");
      location.hash = "#/latency-tables";
    } catch (error) { flash(error.message); }
  }, { class: "danger secondary", "data-action": "delete" });

  const shapes = t?.shapes ? table([
    ["Part", ([part]) => part],
    ["Input shape", ([, shape]) => h("span", { class: "mono" }, shape.join(" × "))],
  ], Object.entries(t.shapes)) : null;
  const networks = calibration?.architectures?.length ? table([
    ["Network", (n) => h("span", { class: "mono" }, n.arch_id)],
    ["Sum of parts", (n) => ms(n.summed_ms), "num"],
    ["Measured", (n) => ms(n.measured_ms), "num"],
    ["Ratio", (n) => (n.measured_ms / n.summed_ms).toFixed(2), "num"],
  ], calibration.architectures) : null;

  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/latency-tables" }, "Latency tables"), " / ", row.name),
    pageHeader(h("span", {}, row.name), badge(row.state),
      zoos.length ? h("a", { class: "button primary", href: `#/searches?zoo=${zoos[0].id}&latency=${row.id}` }, "Search under a latency budget") : null,
      remove),
    panel,
    h("div", { class: "grid-2" },
      card("Table", definitionList([
        ["Id", h("span", { class: "mono" }, row.id)],
        ["Source", row.source === "upload" ? "uploaded" : "measured by the server"],
        ["Space", row.space_name],
        ["Shapes", `${row.in_channels} input channel${row.in_channels > 1 ? "s" : ""}${t ? ` at ${t.shapes.prefix.slice(2).join("×")} px` : ""}, `
          + `${row.num_classes} classes, batch ${row.batch_size}`],
        ["Device", row.device || "–"],
        ["Machine", row.machine || "–"],
        row.torch_version ? ["torch", row.torch_version] : null,
        t ? ["Timing", `${t.timing.warmup} warm-up, ${t.timing.rounds} × ${t.timing.repeats} runs, ${t.timing.statistic}, ${t.timing.clock} clock`] : null,
        ["Calibration", row.scale === null || row.scale === undefined ? "–" : calibration
          ? `scale ${row.scale.toFixed(3)} from ${calibration.architectures.length} networks (coverage ${pct(calibration.coverage, 0)})`
          : `scale ${row.scale.toFixed(3)} (not calibrated: plain sums)`],
        ["Entries", row.blocks === null || row.blocks === undefined ? "–" : `${int(row.blocks)} blocks${perStage ? ` (${perStage})` : ""}, prefix and head`],
        ["Predicted latency", row.fastest_ms ? `${ms(row.fastest_ms)} (fastest architecture) to ${ms(row.largest_ms)} (largest)` : "–"],
        row.error ? ["Error", h("span", { class: "job-error" }, row.error)] : null,
        row.content_hash ? ["Content hash", h("span", { class: "mono small" }, row.content_hash.slice(0, 16) + "…")] : null,
        ["Added", when(row.created_at)],
      ])),
      card("Part input shapes", shapes || h("p", { class: "hint" }, "Once measured."))),
    networks ? card("Calibration networks", networks) : null);
}
