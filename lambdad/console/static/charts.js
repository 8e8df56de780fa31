// Inline SVG charts: sparklines for the function list, line charts with an axis for a function.
import { s } from "./dom.js";

function points(values, width, height, pad) {
  const nums = values.map((v) => (v === null || v === undefined ? 0 : Number(v)));
  const max = Math.max(1, ...nums);
  const step = nums.length > 1 ? (width - 2 * pad) / (nums.length - 1) : 0;
  return {
    max,
    text: nums.map((v, i) => `${(pad + i * step).toFixed(1)},${(height - pad - (v / max) * (height - 2 * pad)).toFixed(1)}`).join(" "),
  };
}

export function sparkline(values, label, extraClass = "") {
  const total = values.reduce((a, b) => a + (b || 0), 0);
  return s("svg", { class: `spark ${extraClass}`, width: 100, height: 24, viewBox: "0 0 100 24", role: "img",
                    "aria-label": `${label}: ${total} in the last hour` },
    s("title", { text: `${label}: ${total} in the last hour` }),
    s("polyline", { points: points(values, 100, 24, 2).text }));
}

export function lineChart(title, timestamps, values, unit) {
  const width = 300, height = 120, pad = 14;
  const { max, text } = points(values, width, height, pad);
  const present = values.filter((v) => v !== null && v !== undefined);
  const latest = present.length ? present[present.length - 1] : null;
  const from = timestamps.length ? new Date(timestamps[0] * 1000).toLocaleTimeString() : "";
  const peak = present.length ? Math.max(...present.map(Number)) : 0;
  const summary = `${title}: maximum ${fmt(peak)}${unit}` +
    (latest === null ? ", no data" : `, latest ${fmt(latest)}${unit}`);
  return s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": summary },
    s("title", { text: summary }),
    s("line", { class: "axis", x1: pad, y1: height - pad, x2: width - pad, y2: height - pad }),
    s("line", { class: "axis", x1: pad, y1: pad, x2: pad, y2: height - pad }),
    s("text", { x: pad + 2, y: pad - 3, text: `${fmt(max)}${unit}` }),
    s("text", { x: pad + 2, y: height - 2, text: from }),
    s("polyline", { points: text }));
}

function fmt(value) {
  return Number.isInteger(value) ? String(value) : Number(value).toFixed(2);
}
