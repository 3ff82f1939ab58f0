// Hand-written SVG charts: class counts (bars), a training curve (line) and the search's Pareto plot.

import { compact, int, ms, pct } from "./format.js";
import { clear, h, s } from "./dom.js";

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((v) => v >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

function axes(svg, { x, y, xTicks, yTicks, box, xFormat, yFormat, xLabel, yLabel }) {
  const [left, top, right, bottom] = box;
  for (const t of yTicks) {
    svg.append(s("line", { x1: left, x2: right, y1: y(t), y2: y(t), class: "grid" }),
      s("text", { x: left - 6, y: y(t) + 4, class: "tick", "text-anchor": "end" }, yFormat(t)));
  }
  for (const t of xTicks) {
    svg.append(s("line", { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4, class: "axis" }),
      s("text", { x: x(t), y: bottom + 17, class: "tick", "text-anchor": "middle" }, xFormat(t)));
  }
  svg.append(s("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }),
    s("line", { x1: left, x2: left, y1: top, y2: bottom, class: "axis" }),
    s("text", { x: (left + right) / 2, y: bottom + 36, class: "axis-label", "text-anchor": "middle" }, xLabel),
    s("text", { x: 14, y: (top + bottom) / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${(top + bottom) / 2})` }, yLabel));
}

/** Train and test images per class, stacked bars. */
export function classCountsChart(classes) {
  const W = 720, H = 240, box = [56, 12, 708, 200];
  const max = Math.max(1, ...classes.map((c) => c.train + c.test));
  const yTicks = ticks(0, max, 4);
  const y = scale(0, yTicks[yTicks.length - 1] || max, box[3], box[1]);
  const band = (box[2] - box[0]) / classes.length;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `Images per class: ${classes.map((c) => `${c.name} ${c.train + c.test}`).join(", ")}` });
  axes(svg, { x: (v) => v, y, xTicks: [], yTicks, box, xFormat: String, yFormat: int, xLabel: "class", yLabel: "images" });
  classes.forEach((c, i) => {
    const x0 = box[0] + i * band + band * 0.15, width = band * 0.7;
    const title = s("title", {}, `${c.name}: ${int(c.train)} train, ${int(c.test)} test`);
    svg.append(s("g", { class: "bar-group" }, title,
      s("rect", { x: x0, width, y: y(c.train), height: box[3] - y(c.train), class: "bar-train" }),
      s("rect", { x: x0, width, y: y(c.train + c.test), height: y(c.train) - y(c.train + c.test), class: "bar-test" })));
    if (classes.length <= 30) {
      svg.append(s("text", { x: x0 + width / 2, y: box[3] + 16, class: "tick", "text-anchor": "middle" },
        c.name.length > 8 ? c.name.slice(0, 7) + "…" : c.name));
    }
  });
  return h("figure", { class: "chart-figure" }, svg,
    h("figcaption", {}, h("span", {}, h("span", { class: "key key-train" }), "train"), h("span", {}, h("span", { class: "key key-test" }), "test")));
}

/** A line through (x, y) points, e.g. the reference's training loss by step. */
export function lineChart(points, { xLabel, yLabel, yFormat = (v) => v.toFixed(2) } = {}) {
  const W = 720, H = 220, box = [56, 12, 708, 178];
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const xTicks = ticks(Math.min(0, ...xs), Math.max(...xs), 6);
  const yTicks = ticks(Math.min(...ys) * 0.95, Math.max(...ys) * 1.05, 4);
  const x = scale(xTicks[0], Math.max(xTicks[xTicks.length - 1], ...xs), box[0], box[2]);
  const y = scale(yTicks[0], yTicks[yTicks.length - 1], box[3], box[1]);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${yLabel} by ${xLabel}` });
  axes(svg, { x, y, xTicks, yTicks, box, xFormat: int, yFormat, xLabel, yLabel });
  svg.append(s("polyline", { class: "line", points: points.map((p) => `${x(p.x)},${y(p.y)}`).join(" ") }));
  for (const p of points) svg.append(s("circle", { cx: x(p.x), cy: y(p.y), r: 3, class: "line-dot" }, s("title", {}, `${xLabel} ${p.x}: ${yFormat(p.y)}`)));
  return h("figure", { class: "chart-figure" }, svg);
}

/** Non-dominated points: no other point is at most as costly and scores higher. Sorted by cost. */
export function paretoFront(points, cost) {
  const sorted = points.filter((p) => p.score !== null && p.score !== undefined)
    .sort((a, b) => a[cost] - b[cost] || b.score - a.score);
  const front = [];
  for (const p of sorted) if (!front.length || p.score > front[front.length - 1].score) front.push(p);
  return front;
}

const STAR = "M0,-8 L2.4,-2.6 8,-2.5 3.8,1.3 5,7.5 0,4.2 -5,7.5 -3.8,1.3 -8,-2.5 -2.4,-2.6Z";

/**
 * The search's plot: every evaluated candidate (grey), the Pareto front (blue steps), the picks
 * (red stars, numbered), the budget (dashed). Hover or focus a point for its numbers; click it
 * (or press Enter) to open it. `cost` is "macs", "params" or "latency_ms" (the predicted latency
 * of a search with a latency table).
 */
export function paretoPlot({ candidates, picks, budget, cost, metric, onSelect, narrow = false }) {
  // A narrow screen gets a narrower drawing rather than the wide one scaled down to unreadable text.
  const [W, H] = narrow ? [400, 340] : [760, 420];
  const box = [64, 16, W - 16, H - 50];
  const costLabel = { macs: "MACs per image", params: "parameters", latency_ms: "predicted latency (ms)" }[cost];
  const limit = { macs: budget.max_macs, params: budget.max_params, latency_ms: budget.max_latency_ms }[cost];
  const costText = cost === "latency_ms" ? ms : int;
  const tickText = cost === "latency_ms" ? (v) => String(v) : compact;
  const scored = candidates.filter((p) => p.score !== null && p.score !== undefined);
  const front = paretoFront(scored, cost);
  const frontIds = new Set(front.map((p) => p.arch_id));
  const pickRank = new Map(picks.map((p, i) => [p.arch_id, i + 1]));
  const costs = scored.map((p) => p[cost]).concat(limit ? [limit] : []);
  const scores = scored.map((p) => p.score);
  // Domains padded by 4 % so that no mark sits on an axis or is cut at the top.
  const [c0, c1] = [Math.min(...costs), Math.max(...costs)], cPad = (c1 - c0 || c1) * 0.04;
  const [s0, s1] = [Math.min(...scores), Math.max(...scores)], sPad = (s1 - s0 || 0.05) * 0.08;
  const xTicks = ticks(c0 - cPad, c1 + cPad, narrow ? 3 : 6);
  const yTicks = ticks(Math.max(0, s0 - sPad), Math.min(1, s1 + sPad), 5);
  const x = scale(Math.min(xTicks[0], c0 - cPad), Math.max(xTicks[xTicks.length - 1], c1 + cPad), box[0], box[2]);
  const y = scale(Math.min(yTicks[0], s0 - sPad), Math.max(yTicks[yTicks.length - 1], s1 + sPad), box[3], box[1]);

  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart pareto", role: "group",
    "aria-label": `Score against ${costLabel}: ${scored.length} candidates, ${front.length} on the Pareto front, ${picks.length} picks` });
  axes(svg, { x, y, xTicks, yTicks, box, xFormat: tickText, yFormat: (v) => pct(v, 0), xLabel: costLabel, yLabel: metric.replaceAll("_", " ") });
  if (limit) {
    svg.append(s("line", { x1: x(limit), x2: x(limit), y1: box[1], y2: box[3], class: "budget" }),
      s("text", { x: x(limit) - 5, y: box[3] - 6, class: "budget-label", "text-anchor": "end" },
        `budget ${cost === "latency_ms" ? ms(limit) : compact(limit)}`));
  }
  if (front.length) {
    // Steps: a front point's score holds until the next, costlier point improves it.
    const path = front.map((p, i) => (i ? `H${x(p[cost])}V${y(p.score)}` : `M${x(p[cost])},${y(p.score)}`)).join("");
    svg.append(s("path", { d: path, class: "front-line" }));
  }

  const tooltip = h("div", { class: "tooltip", role: "tooltip", hidden: true });
  const figure = h("div", { class: "plot" }, svg, tooltip);

  function show(point, anchor) {
    const rank = pickRank.get(point.arch_id);
    clear(tooltip,
      h("div", { class: "mono tooltip-id" }, point.arch_id),
      h("div", {}, `${metric.replaceAll("_", " ")}: ${pct(point.score)}`),
      h("div", {}, `MACs: ${int(point.macs)}`),
      h("div", {}, `params: ${int(point.params)}`),
      point.latency_ms !== null && point.latency_ms !== undefined ? h("div", {}, `latency: ${ms(point.latency_ms)}`) : null,
      rank ? h("div", { class: "tooltip-tag" }, `pick #${rank}`) : frontIds.has(point.arch_id) ? h("div", { class: "tooltip-tag" }, "on the Pareto front") : null,
      h("div", { class: "hint" }, "click to open in the builder"));
    tooltip.hidden = false;
    const area = figure.getBoundingClientRect(), dot = anchor.getBoundingClientRect();
    const left = dot.left - area.left + dot.width / 2, top = dot.top - area.top;
    tooltip.style.left = `${Math.min(Math.max(left, 90), area.width - 90)}px`;
    tooltip.style.top = `${top}px`;
    tooltip.classList.toggle("below", top < 110);
  }
  const hide = () => { tooltip.hidden = true; };

  // Plain candidates first, then the front, then the picks (the best last): the important ones on top.
  const order = (p) => (pickRank.has(p.arch_id) ? 3 - 1 / pickRank.get(p.arch_id) : frontIds.has(p.arch_id) ? 1 : 0);
  for (const point of [...scored].sort((a, b) => order(a) - order(b))) {
    const cx = x(point[cost]), cy = y(point.score), rank = pickRank.get(point.arch_id);
    const kind = rank ? "pick" : frontIds.has(point.arch_id) ? "front" : "candidate";
    const mark = rank ? s("path", { d: STAR, transform: `translate(${cx} ${cy})`, class: "mark" })
      : s("circle", { cx, cy, r: kind === "front" ? 4.5 : 3.5, class: "mark" });
    const group = s("g", { class: `point ${kind}`, tabindex: 0, role: "button", "data-arch": point.arch_id,
      "aria-label": `${point.arch_id}, score ${pct(point.score)}, ${costText(point[cost])} ${cost === "latency_ms" ? "predicted latency" : costLabel}` },
    s("circle", { cx, cy, r: 10, class: "hit" }), mark,
    rank ? s("text", { x: cx + 9, y: cy - 7, class: "rank" }, String(rank)) : null);
    group.addEventListener("mouseenter", () => show(point, mark));
    group.addEventListener("focus", () => show(point, mark));
    group.addEventListener("mouseleave", hide);
    group.addEventListener("blur", hide);
    group.addEventListener("click", () => onSelect(point));
    group.addEventListener("keydown", (event) => { if (event.key === "Enter") onSelect(point); });
    svg.append(group);
  }
  const legend = h("div", { class: "legend" },
    h("span", {}, h("span", { class: "key key-candidate" }), `evaluated (${scored.length})`),
    h("span", {}, h("span", { class: "key key-front" }), `Pareto front (${front.length})`),
    h("span", {}, h("span", { class: "key key-pick" }), `picks (${picks.length})`),
    limit ? h("span", {}, h("span", { class: "key key-budget" }), "budget") : null);
  return h("div", { class: "pareto-wrap" }, figure, legend);
}
