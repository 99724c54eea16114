// Build-time check for `python -m devtools web`: load the bundle's model.onnx in onnxruntime-web
// (the WASM backend the page uses, one thread) and score rows with the page's own score.mjs.
//
//   node check_model.mjs <model.onnx> <manifest.json> <rows.json>
//
// Prints one JSON object: {"ok": true, labels, probabilities, load_ms, run_ms} or
// {"ok": false, "stage": "load" | "run", "error": message}. Exit code 0 either way; the
// caller reads the verdict (a crash of node itself is the only non-zero exit).
import { readFile } from "node:fs/promises";
import * as ort from "onnxruntime-web/wasm";
import { score } from "./score.mjs";

const [modelPath, manifestPath, rowsPath] = process.argv.slice(2);
ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
const rows = JSON.parse(await readFile(rowsPath, "utf8"));
const model = new Uint8Array(await readFile(modelPath));

let session;
const loadStarted = performance.now();
try {
  session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
} catch (e) {
  console.log(JSON.stringify({ ok: false, stage: "load", error: String(e && e.message ? e.message : e) }));
  process.exit(0);
}
const loadMs = performance.now() - loadStarted;
try {
  const result = await score(ort, session, manifest, rows);
  console.log(JSON.stringify({ ok: true, labels: result.labels, probabilities: result.probabilities, load_ms: loadMs, run_ms: result.ms }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, stage: "run", error: String(e && e.message ? e.message : e) }));
}
