// Validation and scoring of one bundle in JavaScript, shared by the page (index.html) and the
// build-time check in Node (check_model.mjs), so the check runs the page's own code.
//
// validateRow mirrors serving/validation.py for a one-row request: same reason codes, same
// messages, so a bad input reads the same in the page as in the API's 422 answer.
// makeFeeds mirrors serving/model.py ModelRunner.feed: float32 [N, 1] per numeric/boolean
// feature (NaN for null), string [N, 1] per categorical feature ("" for null), or one float32
// [N, F] tensor for the single_tensor layout.

export const CATEGORICAL_NULL_TOKEN = "";
export const MAX_REPORTED_ERRORS = 50;

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  switch (typeof v) {
    case "object": return "an object";
    case "string": return "a string";
    case "boolean": return "a boolean";
    // JSON cannot tell 1 from 1.0 once parsed; Python names them int and float
    case "number": return Number.isInteger(v) ? "int" : "float";
    default: return typeof v;
  }
}

// Python's repr() of a str, as the API formats unseen categories
export function pyRepr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of s) {
    const code = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return quote + out + quote;
}

function pyList(items) {
  return "[" + items.map(pyRepr).join(", ") + "]";
}

// Python's sorted() on str: by code point, not by UTF-16 unit or locale
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function fieldError(reason, message, row, field) {
  return { row, field, reason, message };
}

/** Check one row (an object of feature: JSON value) as the API would; returns null or the 422 body. */
export function validateRow(manifest, row, options = {}) {
  const rejectUnseen = options.rejectUnseenCategories ?? true;
  const names = manifest.features.map((f) => f.name);
  const errors = [];
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    errors.push(fieldError("bad_shape", "row must be an object of feature: value", 0, null));
    return unprocessable(errors);
  }
  const keys = Object.keys(row);
  if (keys.length !== names.length || !keys.every((k) => names.includes(k))) {
    for (const n of names) if (!(n in row)) errors.push(fieldError("missing_feature", "feature is missing", 0, n));
    for (const k of keys) if (!names.includes(k)) errors.push(fieldError("unknown_feature", "unknown feature", 0, k));
    if (errors.length) return unprocessable(errors);
  }
  for (const spec of manifest.features) {
    const v = row[spec.name];
    const err = (reason, message) => errors.push(fieldError(reason, message, 0, spec.name));
    if (v === null) {
      if (!spec.nullable) err("null_not_allowed", "null is not allowed for this feature");
    } else if (spec.kind === "numeric") {
      if (typeof v !== "number") err("wrong_type", `expected a number, got ${typeName(v)}`);
      else if (!Number.isFinite(v)) err("not_finite", "NaN and Infinity are not accepted; send null if missing");
    } else if (spec.kind === "boolean") {
      if (typeof v !== "boolean") err("wrong_type", `expected true or false, got ${typeName(v)}`);
    } else if (typeof v !== "string") {
      err("wrong_type", `expected a string category, got ${typeName(v)}`);
    } else if (rejectUnseen && !spec.categories.includes(v)) {
      const shown = [...spec.categories].sort(byCodePoint).slice(0, 20);
      err("unseen_category", `unseen category ${pyRepr(Array.from(v).slice(0, 100).join(""))}; known: ${pyList(shown)}`);
    }
  }
  return errors.length ? unprocessable(errors) : null;
}

function unprocessable(errors) {
  errors = errors.slice(0, MAX_REPORTED_ERRORS);
  const first = errors[0];
  const py = (v, f) => (v === null || v === undefined ? "None" : f(v));
  const where = first.row !== null || first.field ? ` (row ${py(first.row, String)}, field ${py(first.field, pyRepr)})` : "";
  return {
    error: first.reason,
    message: `${errors.length} invalid value(s); first: ${first.message}${where}`,
    details: errors,
  };
}

/** The graph's inputs for validated rows, as serving/model.py feeds onnxruntime. */
export function makeFeeds(ort, manifest, rows) {
  const n = rows.length;
  const num = (v) => (v === null ? NaN : Number(v)); // booleans: true -> 1, false -> 0
  if (manifest.input_layout === "single_tensor") {
    const f = manifest.features.length;
    const data = new Float32Array(n * f);
    rows.forEach((r, i) => manifest.features.forEach((spec, j) => { data[i * f + j] = num(r[spec.name]); }));
    return { [manifest.single_input_name]: new ort.Tensor("float32", data, [n, f]) };
  }
  const feeds = {};
  for (const spec of manifest.features) {
    if (spec.kind === "categorical") {
      const data = rows.map((r) => (r[spec.name] === null ? CATEGORICAL_NULL_TOKEN : String(r[spec.name])));
      feeds[spec.name] = new ort.Tensor("string", data, [n, 1]);
    } else {
      feeds[spec.name] = new ort.Tensor("float32", Float32Array.from(rows, (r) => num(r[spec.name])), [n, 1]);
    }
  }
  return feeds;
}

const INTEGRAL_TEXT = /^[+-]?(0|[1-9][0-9]*)(\.0*)?$/;

/** modelserve.schema.class_key: a label means the same class in whatever type it comes (1, 1.0, "1"; true, "True"). */
export function classKey(v) {
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number" && Number.isInteger(v)) return String(v);
  const text = String(v);
  if (text.toLowerCase() === "true" || text.toLowerCase() === "false") return text.toLowerCase();
  if (INTEGRAL_TEXT.test(text)) return String(Math.trunc(Number(text)) || 0); // "-0" -> "0", as Python's int
  return text;
}

/** OutputSpec.label_value: a class as the API's answers carry it, in the labels' own type ("1" -> 1, "True" -> true). */
export function labelValue(outputs, className) {
  if (outputs.label_type === "integer") return Number(classKey(className));
  if (outputs.label_type === "boolean") return classKey(className) === "true";
  return className;
}

function labelsFromProbabilities(out) {
  return !out.label_output || (out.threshold !== undefined && out.threshold !== null);
}

/** Class names from the label output, by value (never by position), as ModelRunner._class_labels. */
function classNamesOf(out, raw) {
  const byKey = new Map(out.classes.map((c) => [classKey(c), c]));
  return raw.map((v) => {
    const name = byKey.get(classKey(v));
    if (name === undefined) throw new Error(`the model answered label ${String(v)} that is not among its classes ${JSON.stringify(out.classes)}`);
    return name;
  });
}

/** The most probable class of each row, or with a threshold classes[1] when its probability reaches it. */
function classNamesFromProbabilities(out, probabilities) {
  return probabilities.map((p) => {
    if (out.threshold !== undefined && out.threshold !== null) return out.classes[p[1] >= out.threshold ? 1 : 0];
    let best = 0;
    for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
    return out.classes[best];
  });
}

function probabilityRows(out, t, n) {
  const k = t.dims[t.dims.length - 1];
  const rows = [];
  for (let i = 0; i < n; i++) {
    const p = Array.from(t.data.slice(i * k, (i + 1) * k), Number);
    rows.push(k === 1 && out.classes.length === 2 ? [1 - p[0], p[0]] : p); // one sigmoid column: P(classes[1])
  }
  return rows;
}

/**
 * Labels, class names and probabilities (rows of numbers in manifest class order), as serving/model.py
 * reads them; labels in the labels' own type, as the API answers them (numbers for a regressor).
 */
export function readOutputs(manifest, results, n) {
  const out = manifest.outputs;
  if (out.task !== "classification") {
    return { labels: Array.from(results[out.label_output].data, Number), classNames: null, probabilities: null };
  }
  const t = out.probability_output ? results[out.probability_output] : null;
  const probabilities = t ? probabilityRows(out, t, n) : null;
  let classNames;
  if (labelsFromProbabilities(out)) {
    classNames = classNamesFromProbabilities(out, probabilities);
  } else {
    const raw = Array.from(results[out.label_output].data, (v) => (typeof v === "bigint" ? Number(v) : v));
    classNames = classNamesOf(out, raw);
  }
  return { labels: classNames.map((c) => labelValue(out, c)), classNames, probabilities };
}

/** Output names to fetch: the label (unless it comes from the probabilities), and the probabilities for classifiers. */
export function outputNames(manifest) {
  const out = manifest.outputs;
  if (out.task !== "classification") return [out.label_output];
  const names = labelsFromProbabilities(out) ? [] : [out.label_output];
  if (out.probability_output) names.push(out.probability_output);
  return names;
}

/** Score validated rows; returns labels, probabilities and the time session.run took in ms. */
export async function score(ort, session, manifest, rows) {
  const feeds = makeFeeds(ort, manifest, rows);
  const started = performance.now();
  const results = await session.run(feeds, outputNames(manifest));
  const ms = performance.now() - started;
  return { ...readOutputs(manifest, results, rows.length), ms };
}
