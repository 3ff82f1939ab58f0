// Datasets: list, built-in import, upload with a progress bar, details with class counts and samples.

import { del, get, objectUrl, post, upload } from "../api.js";
import { classCountsChart } from "../charts.js";
import { actionButton, clear, field, h, numberInput, select } from "../dom.js";
import { bytes, int, when } from "../format.js";
import { card, definitionList, empty, errorBox, flash, formValues, loading, pageHeader, progressBar, table } from "../ui.js";

const UPLOAD_FORMATS = [["", "detect from the file"], ["npz", "NPZ (x, y arrays)"], ["idx", "IDX (MNIST family)"],
  ["imagefolder", "ImageFolder .zip / .tar.gz"], ["cifar-10", "CIFAR-10 binary"], ["cifar-100", "CIFAR-100 binary"]];

function importForm(builtins, onImported) {
  const message = h("div", { class: "form-message" });
  const options = h("div", { class: "builtin-options" });
  const nameSelect = select("name", builtins.map((b) => [b.name, b.name]), "synthetic");
  const describe = () => {
    const chosen = builtins.find((b) => b.name === nameSelect.value);
    clear(options, h("p", { class: "hint" }, chosen ? chosen.description : ""),
      chosen && "num_images" in chosen.options
        ? field("Images", numberInput("num_images", chosen.options.num_images, { min: 20, step: 1 })) : null,
      chosen && "train_limit" in chosen.options
        ? field("Training images (limit)", numberInput("train_limit", "", { min: 100, placeholder: "all" })) : null);
  };
  nameSelect.addEventListener("change", describe);
  describe();
  const form = h("form", { class: "stack", "data-form": "builtin" },
    field("Built-in dataset", nameSelect), options,
    field("Seed", numberInput("seed", 0, { step: 1 }), "Seeds the train/test split (and synthetic images)."),
    h("button", { type: "submit", class: "primary" }, "Import"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { name, seed, ...rest } = formValues(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message, loading("Importing…"));
    try {
      const dataset = await post("/v1/datasets/builtin", { name, seed: seed ?? 0, options: rest });
      clear(message);
      flash(`Imported ${dataset.name}.`, "notice");
      onImported(dataset);
    } catch (error) {
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function uploadForm(onUploaded) {
  const message = h("div", { class: "form-message" });
  const bar = h("div", { class: "upload-progress" });
  const form = h("form", { class: "stack", "data-form": "upload" },
    field("File", h("input", { type: "file", name: "file", required: true }),
      "NPZ, IDX, ImageFolder .zip/.tar.gz or CIFAR binary .tar.gz (see the API docs for the layouts)."),
    field("Name", h("input", { type: "text", name: "name", placeholder: "from the file name" })),
    field("Format", select("format", UPLOAD_FORMATS, "")),
    h("button", { type: "submit", class: "primary" }, "Upload"), bar, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(form);
    if (!values.file) return;
    const body = new FormData();
    body.append("file", values.file, values.file.name);
    if (values.name) body.append("name", values.name);
    if (values.format) body.append("format", values.format);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(message);
    clear(bar, progressBar(0, "upload progress"), h("p", { class: "hint" }, `Uploading ${values.file.name} (${bytes(values.file.size)})…`));
    try {
      const dataset = await upload("/v1/datasets", body, (fraction, loaded, total) => {
        clear(bar, progressBar(fraction, "upload progress"),
          h("p", { class: "hint" }, fraction < 1 ? `${bytes(loaded)} of ${bytes(total)} sent` : "Sent; reading the file on the server…"));
      });
      clear(bar);
      form.reset();
      flash(`Uploaded ${dataset.name}.`, "notice");
      onUploaded(dataset);
    } catch (error) {
      clear(bar);
      clear(message, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function datasetsView(ctx) {
  const [page, builtins] = await Promise.all([get("/v1/datasets?limit=200"), get("/v1/datasets/builtin")]);
  const list = h("div", {});
  const refresh = async () => renderList(await get("/v1/datasets?limit=200"));
  function renderList(data) {
    if (!data.items.length) {
      clear(list, empty("No datasets yet. Import a built-in one (synthetic is the quickest) or upload a file."));
      return;
    }
    clear(list, table([
      ["Name", (d) => h("a", { href: `#/datasets/${d.id}` }, d.name)],
      ["Source", (d) => (d.source === "upload" ? `upload (${d.format})` : "built-in")],
      ["Train / test", (d) => `${int(d.num_train)} / ${int(d.num_test)}`, "num"],
      ["Classes", (d) => d.num_classes, "num"],
      ["Image", (d) => d.image_shape.join("×")],
      ["Added", (d) => when(d.created_at)],
    ], data.items));
  }
  renderList(page);
  return h("div", { class: "page" }, pageHeader("Datasets"),
    h("div", { class: "grid-2" },
      card("Import a built-in dataset", importForm(builtins, () => refresh())),
      card("Upload a dataset", uploadForm(() => refresh()))),
    card("Your datasets", list));
}

export async function datasetView(ctx) {
  const [id] = ctx.params;
  const dataset = await get(`/v1/datasets/${id}`);
  const counts = h("div", {}, loading("Counting images per class…"));
  const samples = h("div", { class: "samples" }, loading("Drawing sample images…"));
  get(`/v1/datasets/${id}/class-counts`).then((c) => clear(counts, classCountsChart(c.classes)))
    .catch((error) => clear(counts, errorBox(error)));

  const shown = Math.min(dataset.num_classes, 10), perClass = 8, cell = 32;
  objectUrl(`/v1/datasets/${id}/samples.png?per_class=${perClass}&max_classes=${shown}&cell=${cell}`).then((url) => {
    ctx.onLeave(() => URL.revokeObjectURL(url));
    const labels = h("div", { class: "sample-labels" }, dataset.class_names.slice(0, shown).map((n) => h("div", { class: "sample-label", title: n }, n)));
    clear(samples, h("div", { class: "sample-grid" }, labels,
      h("img", { src: url, alt: `${perClass} training images of each of the first ${shown} classes`, class: "pixelated" })),
    dataset.num_classes > shown ? h("p", { class: "hint" }, `The first ${shown} of ${dataset.num_classes} classes.`) : null);
  }).catch((error) => clear(samples, errorBox(error)));

  const remove = actionButton("Delete", async () => {
    if (!window.confirm(`Delete dataset ${dataset.name}?`)) return;
    try {
      await del(`/v1/datasets/${id}`);
      flash(`Deleted ${dataset.name}.`, "notice");
      location.hash = "#/datasets";
    } catch (error) { flash(error.message); }
  }, { class: "danger secondary" });

  return h("div", { class: "page" },
    h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name),
    pageHeader(dataset.name, h("a", { class: "button primary", href: `#/zoos?dataset=${id}` }, "Build a zoo on it"), remove),
    h("div", { class: "grid-2" },
      card("Details", definitionList([
        ["Id", h("span", { class: "mono" }, dataset.id)],
        ["Source", dataset.source === "upload" ? `upload, ${dataset.format}` : "built-in"],
        ["Images", `${int(dataset.num_train)} train, ${int(dataset.num_test)} test`],
        ["Classes", String(dataset.num_classes)],
        ["Image shape", `${dataset.image_shape.join(" × ")} (height × width × channels)`],
        dataset.upload_bytes ? ["Uploaded", bytes(dataset.upload_bytes)] : null,
        ["Content hash", h("span", { class: "mono small" }, dataset.content_hash.slice(0, 16) + "…")],
        ["Added", when(dataset.created_at)],
      ])),
      card("Images per class", counts)),
    card("Sample images (training split)", samples));
}
