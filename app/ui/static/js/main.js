// The dashboard's entry point: a hash router, the signed-in state and the lifetime of each view.

import { session } from "./api.js";
import { clear } from "./dom.js";
import { errorBox, flash, loading } from "./ui.js";
import { signInView } from "./views/signin.js";
import { datasetView, datasetsView } from "./views/datasets.js";
import { zooView, zoosView } from "./views/zoos.js";
import { builderView } from "./views/builder.js";
import { searchView, searchesView } from "./views/searches.js";
import { finetuneView, finetunesView } from "./views/finetunes.js";
import { jobView, jobsView } from "./views/jobs.js";
import { validationView, validationsView } from "./views/validations.js";
import { latencyTableView, latencyTablesView } from "./views/latency.js";
import { keysView } from "./views/keys.js";

const ROUTES = [
  [/^\/datasets$/, datasetsView, "datasets"],
  [/^\/datasets\/([\w-]+)$/, datasetView, "datasets"],
  [/^\/zoos$/, zoosView, "zoos"],
  [/^\/zoos\/([\w-]+)$/, zooView, "zoos"],
  [/^\/builder$/, builderView, "builder"],
  [/^\/searches$/, searchesView, "searches"],
  [/^\/searches\/([\w-]+)$/, searchView, "searches"],
  [/^\/validations$/, validationsView, "validations"],
  [/^\/validations\/([\w-]+)$/, validationView, "validations"],
  [/^\/latency-tables$/, latencyTablesView, "latency"],
  [/^\/latency-tables\/([\w-]+)$/, latencyTableView, "latency"],
  [/^\/finetunes$/, finetunesView, "finetunes"],
  [/^\/finetunes\/([\w-]+)$/, finetuneView, "finetunes"],
  [/^\/jobs$/, jobsView, "jobs"],
  [/^\/jobs\/([\w-]+)$/, jobView, "jobs"],
  [/^\/keys$/, keysView, "keys"],
];

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("signout");
let current = null; // the context of the view on screen

/** What a view gets: its route parameters, and timers that stop when the person navigates away. */
function newContext(params, query) {
  const timers = new Set();
  const cleanups = [];
  const ctx = {
    params, query, alive: true,
    /** Calls `fn` every `ms` while the view is shown and `fn` resolves to true. */
    poll(fn, ms, immediate = true) {
      const step = async () => {
        if (!ctx.alive) return;
        let again = false;
        try { again = await fn(); } catch (error) { flash(error.message); }
        if (again && ctx.alive) timers.add(setTimeout(step, ms));
      };
      if (immediate) step(); else timers.add(setTimeout(step, ms));
    },
    onLeave(fn) { cleanups.push(fn); },
    leave() {
      ctx.alive = false;
      timers.forEach(clearTimeout);
      cleanups.forEach((fn) => fn());
    },
  };
  return ctx;
}

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "/datasets";
  const [path, search] = raw.split("?");
  return { path: path || "/datasets", query: new URLSearchParams(search || "") };
}

async function render() {
  current?.leave();
  document.getElementById("flash").replaceChildren();
  const signedIn = Boolean(session.key());
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  const { path, query } = parseHash();
  if (!signedIn) {
    current = newContext([], query);
    clear(main, signInView(current, () => render()));
    return;
  }
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", route && link.dataset.section === route[2]);
  current = newContext(route ? path.match(route[0]).slice(1) : [], query);
  if (!route) {
    clear(main, errorBox(new Error(`There is no page ${path}. Use the menu above.`)));
    return;
  }
  const ctx = current;
  let view = route[1](ctx);
  if (view instanceof Promise) {
    clear(main, loading());
    try { view = await view; } catch (error) { view = errorBox(error); }
  }
  if (ctx.alive) clear(main, view);
}

signOutButton.addEventListener("click", () => {
  session.signOut();
  location.hash = "#/datasets";
  render();
});

function signOut(message) {
  if (!session.key()) return; // signed out already (several requests can hear the same 401)
  session.signOut();
  render().then(() => flash(message));
}

window.addEventListener("blockzoo:unauthorized", () => signOut("Your API key was not accepted any more; sign in again."));
window.addEventListener("blockzoo:signout", (event) => signOut(event.detail.message));
window.addEventListener("blockzoo:refresh", () => render());
window.addEventListener("hashchange", render);
render();
