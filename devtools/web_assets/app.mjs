// The page: a form from the bundle's schema, scoring in the browser with onnxruntime-web (WASM,
// one thread), and, when config.json names an API, the same row through /predict for comparison.
import * as ort from "./ort/ort.wasm.bundle.min.mjs";
import { validateRow, score } from "./score.mjs";
import { explainRow, explanationDifference } from "./explain.mjs";

const AGREEMENT_TOLERANCE = 1e-5;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const fmt = (x) => (Math.abs(x) >= 1e6 || (x !== 0 && Math.abs(x) < 0.001) ? x.toExponential(3) : String(Number(x.toPrecision(6))));

// one thread: no SharedArrayBuffer, so no cross-origin isolation headers are needed
ort.env.wasm.numThreads = 1;

let manifest, config, session, background;

function fieldId(i) { return `feature-${i}`; }

function renderForm() {
  const fields = $("fields");
  manifest.features.forEach((spec, i) => {
    const id = fieldId(i);
    const box = el("div", { class: "field" });
    box.append(el("label", { for: id }, spec.name));
    const hints = [];
    let input;
    if (spec.kind === "numeric") {
      // text, not type=number: what the user typed reaches validation, as a wrong value would reach the API
      input = el("input", { id, name: spec.name, type: "text", inputmode: "decimal", autocomplete: "off" });
      if (spec.min !== null && spec.max !== null) {
        hints.push(`number; reference range ${fmt(spec.min)} to ${fmt(spec.max)}`);
        input.setAttribute("placeholder", fmt((spec.min + spec.max) / 2));
      } else hints.push("number");
    } else {
      input = el("select", { id, name: spec.name });
      const choices = spec.kind === "boolean" ? ["true", "false"] : spec.categories;
      input.append(el("option", { value: "" }, spec.nullable ? "(missing)" : "(choose)"));
      for (const c of choices) input.append(el("option", { value: c }, c));
      hints.push(spec.kind === "boolean" ? "true or false" : `one of ${choices.length} categories`);
    }
    hints.push(spec.nullable ? "may be left empty (missing)" : "required");
    input.dataset.kind = spec.kind;
    input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
    box.append(input, el("span", { id: `${id}-hint`, class: "hint" }, hints.join("; ")), el("span", { id: `${id}-error`, class: "error" }));
    fields.append(box);
  });
  $("row-json").value = JSON.stringify(exampleRow(), null, 1);
}

function exampleRow() {
  const row = {};
  for (const f of manifest.features) {
    if (f.kind === "numeric") row[f.name] = f.min !== null && f.max !== null ? Number(((f.min + f.max) / 2).toPrecision(4)) : 0;
    else if (f.kind === "boolean") row[f.name] = false;
    else row[f.name] = f.categories[0] ?? null;
  }
  return row;
}

// what the form says, as the JSON value the API would receive
function formValue(spec, raw) {
  const text = raw.trim();
  if (text === "") return null;
  if (spec.kind === "boolean") return text === "true" ? true : text === "false" ? false : text;
  if (spec.kind === "categorical") return raw;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (/^[-+]?(nan|inf|infinity)$/i.test(text)) return text.toLowerCase().includes("nan") ? NaN : text.startsWith("-") ? -Infinity : Infinity;
  return raw; // a string where a number belongs: wrong_type, as in the API
}

function formRow() {
  const row = {};
  manifest.features.forEach((spec, i) => { row[spec.name] = formValue(spec, $(fieldId(i)).value); });
  return row;
}

function clearMessages() {
  $("errors").hidden = true;
  $("errors").replaceChildren();
  $("row-json-error").textContent = "";
  $("row-json").removeAttribute("aria-invalid");
  manifest.features.forEach((_, i) => {
    $(fieldId(i)).removeAttribute("aria-invalid");
    $(`${fieldId(i)}-error`).textContent = "";
  });
}

function showErrors(body) {
  const box = $("errors");
  box.dataset.reason = body.error;
  box.replaceChildren(el("p", { id: "error-message", role: "alert" }, body.message));
  const list = el("ul");
  for (const d of body.details || []) {
    const item = el("li");
    item.append(el("code", {}, d.reason), ` ${d.field ?? ""}: ${d.message}`);
    item.dataset.reason = d.reason;
    list.append(item);
    const i = manifest.features.findIndex((f) => f.name === d.field);
    if (i >= 0) {
      $(fieldId(i)).setAttribute("aria-invalid", "true");
      $(`${fieldId(i)}-error`).textContent = `${d.reason}: ${d.message}`;
    }
  }
  box.append(list);
  box.hidden = false;
  $("result").hidden = true;
  $("api").hidden = true;
}

function showResult(res) {
  const label = res.labels[0];
  $("label").textContent = String(label);
  const body = $("probabilities").querySelector("tbody");
  body.replaceChildren();
  const probs = res.probabilities ? res.probabilities[0] : null;
  $("probabilities").hidden = !probs;
  if (probs) {
    manifest.outputs.classes.forEach((c, k) => {
      const tr = el("tr", { "data-class": c, "data-probability": String(probs[k]) });
      const meter = el("meter", { min: "0", max: "1", value: String(probs[k]), "aria-label": `${c} probability` });
      tr.append(el("th", { scope: "row" }, c), el("td", { class: "num" }, probs[k].toFixed(6)), el("td", { class: "bar" }));
      tr.lastChild.append(meter);
      body.append(tr);
    });
  }
  const timing = $("timing");
  timing.dataset.ms = String(res.ms);
  timing.textContent = `Scored in this browser in ${res.ms.toFixed(2)} ms (onnxruntime-web, WASM, one thread; nothing left the page).`;
  $("result").hidden = false;
}

function showExplanation(explanation) {
  const box = $("explanation");
  box.hidden = !explanation;
  if (!explanation) return;
  const what = explanation.class !== undefined ? `the probability of ${explanation.class}` : "the prediction";
  $("explanation-caption").textContent =
    `Why: each feature's contribution to ${what} (${fmt(explanation.output)}) from its average over ${background.length} reference rows (${fmt(explanation.base_value)})`;
  const body = box.querySelector("tbody");
  body.replaceChildren();
  const entries = Object.entries(explanation.values).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  for (const [name, value] of entries) {
    const tr = el("tr", { "data-feature": name, "data-value": String(value) });
    tr.append(el("th", { scope: "row" }, name), el("td", { class: "num" }, (value >= 0 ? "+" : "") + fmt(value)));
    body.append(tr);
  }
  box.dataset.ms = String(explanation.ms);
}

function compareExplanations(local, remote) {
  const a = $("explain-agreement");
  if (!local || !remote) {
    a.textContent = "";
    return;
  }
  const diff = explanationDifference(local, remote);
  const agree = diff <= AGREEMENT_TOLERANCE;
  a.dataset.agree = String(agree);
  a.dataset.maxDiff = String(diff);
  a.className = agree ? "agree" : "disagree";
  a.textContent = agree
    ? `Explanations agree: largest difference ${diff.toExponential(1)}.`
    : `Explanations disagree: largest difference ${diff.toExponential(1)}.`;
}

async function callApi(row, local, explanation) {
  const box = $("api");
  box.hidden = false;
  $("agreement").textContent = "";
  $("agreement").removeAttribute("data-agree");
  $("api-result").textContent = "Calling the API…";
  const headers = { "content-type": "application/json" };
  const key = config.api_key || $("api-key").value.trim();
  if (key) headers["x-api-key"] = key;
  const started = performance.now();
  let answer;
  try {
    const body = explanation ? { instances: [row], explain: true } : { instances: [row] };
    const resp = await fetch(`${config.api_url}/predict`, { method: "POST", headers, body: JSON.stringify(body) });
    answer = await resp.json();
    if (!resp.ok) throw new Error(`${resp.status} ${answer.error || ""}: ${answer.message || JSON.stringify(answer)}`);
  } catch (e) {
    $("api-result").textContent = `The API call failed: ${e.message}`;
    $("agreement").dataset.agree = "error";
    return;
  }
  const ms = performance.now() - started;
  const apiLabel = answer.predictions[0];
  const apiProbs = answer.probabilities ? answer.probabilities[0] : null;
  $("api-result").dataset.label = String(apiLabel);
  $("api-result").dataset.ms = String(ms);
  $("api-result").textContent = `API (${config.api_url}): ${apiLabel}, round trip ${ms.toFixed(0)} ms.`;
  const localProbs = local.probabilities ? local.probabilities[0] : null;
  const diff = apiProbs && localProbs ? Math.max(...apiProbs.map((p, k) => Math.abs(p - localProbs[k]))) : 0;
  // labels in their own type on both sides (JSON integers, booleans or strings): the same value and the same type
  const agree = typeof apiLabel === typeof local.labels[0] && String(apiLabel) === String(local.labels[0]) && diff <= AGREEMENT_TOLERANCE;
  const a = $("agreement");
  a.dataset.agree = String(agree);
  a.dataset.maxDiff = String(diff);
  a.className = agree ? "agree" : "disagree";
  a.textContent = agree
    ? `Browser and API agree: same label, ${diff === 0 ? "identical probabilities" : `largest probability difference ${diff.toExponential(1)}`}.`
    : `Browser and API disagree: label ${local.labels[0]} vs ${apiLabel}, largest probability difference ${diff.toExponential(1)}.`;
  compareExplanations(explanation, answer.explanations ? answer.explanations[0] : null);
}

let runs = 0;

async function run(row) {
  try {
    clearMessages();
    const problem = validateRow(manifest, row);
    if (problem) {
      showErrors(problem);
      return;
    }
    const res = await score(ort, session, manifest, [row]);
    showResult(res);
    const explanation = background ? await explainRow(ort, session, manifest, row, background, res.classNames?.[0] ?? null) : null;
    showExplanation(explanation);
    if (config.api_url) await callApi(row, res, explanation);
  } finally {
    document.body.dataset.runs = String(++runs); // for tests and tools: one more input fully handled
  }
}

async function main() {
  [manifest, config] = await Promise.all(["manifest.json", "config.json"].map((f) => fetch(f).then((r) => r.json())));
  // the explanations' background rows (a page built before explanations has none: it just scores)
  background = await fetch("background.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (config.api_url) config.api_url = config.api_url.replace(/\/+$/, ""); // API Gateway's stage URL ends with "/"
  document.title = `${manifest.model_name}: in the browser`;
  $("title").textContent = `${manifest.model_name} (version ${manifest.version})`;
  renderForm();
  const started = performance.now();
  session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const loadMs = performance.now() - started;
  $("status").dataset.loadMs = String(loadMs);
  $("status").textContent = `Model loaded in ${loadMs.toFixed(0)} ms; scoring runs in this browser.`;
  $("about").textContent = `onnxruntime-web ${config.onnxruntime_web}, WASM backend, one thread.` +
    (config.api_url ? ` Each score is also sent to ${config.api_url}/predict for comparison.` : "");
  if (config.api_url && !config.api_key && config.ask_api_key) {
    $("api-key-field").hidden = false;
    $("api-key").value = sessionStorage.getItem("api-key") || "";
    $("api-key").addEventListener("change", () => sessionStorage.setItem("api-key", $("api-key").value.trim()));
  }
  $("score").disabled = false;
  $("score-json").disabled = false;
  $("row-form").addEventListener("submit", (e) => { e.preventDefault(); run(formRow()); });
  $("json-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let row;
    try {
      row = JSON.parse($("row-json").value);
    } catch (err) {
      clearMessages();
      $("row-json").setAttribute("aria-invalid", "true");
      showErrors({ error: "malformed_json", message: `request body is not valid JSON: ${err.message}`, details: [] });
      return;
    }
    run(row);
  });
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  $("status").textContent = `The page could not start: ${e.message}`;
  document.body.dataset.ready = "error";
});
