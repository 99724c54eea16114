// Why this prediction, in the browser: the exact interventional Shapley values serving/explain.py answers
// for "explain": true, computed with the page's own model and the same background rows (background.json,
// written by `python -m devtools web`): every coalition of the M features x every background row is one
// mixed row, all scored in ONE session.run; a coalition's value is the mean output over the background,
// and Shapley's weights turn the 2^M values into each feature's contribution.
import { makeFeeds } from "./score.mjs";

export const EXACT_MAX_FEATURES = 12; // as serving/explain.py: beyond it the API samples, the page does not explain

function factorial(n) {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/** The explained output of each of n rows: a class's probability, or the regressor's prediction. */
async function outputs(ort, session, manifest, rows, classIndex) {
  const out = manifest.outputs;
  const name = out.task === "classification" ? out.probability_output : out.label_output;
  const results = await session.run(makeFeeds(ort, manifest, rows), [name]);
  const t = results[name];
  const data = Array.from(t.data, Number);
  if (out.task !== "classification") return data;
  const k = t.dims[t.dims.length - 1];
  if (k === 1 && out.classes.length === 2) return data.map((p) => (classIndex === 1 ? p : 1 - p)); // one sigmoid column
  return rows.map((_, i) => data[i * k + classIndex]);
}

/**
 * Explain one validated row: {class, output, base_value, values: {feature: contribution}, method, ms}.
 * ``className``: the class explained (default: ``predictedClass``); null for a regressor.
 */
export async function explainRow(ort, session, manifest, row, background, predictedClass, className = null) {
  const names = manifest.features.map((f) => f.name);
  const m = names.length;
  if (m > EXACT_MAX_FEATURES) return null;
  const started = performance.now();
  const classification = manifest.outputs.task === "classification";
  const explained = classification ? className ?? predictedClass : null;
  const classIndex = classification ? manifest.outputs.classes.indexOf(explained) : 0;
  const coalitions = 1 << m;
  const n = background.length;
  const mixed = new Array(coalitions * n);
  for (let c = 0; c < coalitions; c++) {
    for (let j = 0; j < n; j++) {
      const r = {};
      for (let i = 0; i < m; i++) r[names[i]] = c & (1 << i) ? row[names[i]] : background[j][names[i]];
      mixed[c * n + j] = r;
    }
  }
  const scored = await outputs(ort, session, manifest, mixed, classIndex);
  const v = new Float64Array(coalitions);
  for (let c = 0; c < coalitions; c++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += scored[c * n + j];
    v[c] = sum / n;
  }
  const weight = Array.from({ length: m }, (_, s) => (factorial(s) * factorial(m - s - 1)) / factorial(m));
  const values = {};
  names.forEach((name, i) => {
    let phi = 0;
    for (let c = 0; c < coalitions; c++) {
      if (c & (1 << i)) continue;
      let size = 0;
      for (let b = c; b; b &= b - 1) size++;
      phi += weight[size] * (v[c | (1 << i)] - v[c]);
    }
    values[name] = phi;
  });
  const result = { output: v[coalitions - 1], base_value: v[0], values, method: "exact", ms: performance.now() - started };
  if (classification) result.class = explained;
  return result;
}

/** The largest difference between two explanations' contributions (Infinity when the classes differ). */
export function explanationDifference(a, b) {
  if (!a || !b || a.class !== b.class) return Infinity;
  return Math.max(...Object.keys(a.values).map((k) => Math.abs(a.values[k] - b.values[k])), Math.abs(a.base_value - b.base_value));
}
