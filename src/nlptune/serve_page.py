"""The page ``nlptune serve`` shows at ``/``: a text box to try the model, the prediction drawn
as labels with score bars, entities highlighted in the text, an answer marked in its context.

Plain HTML and JavaScript (no build step, nothing loaded from elsewhere); it reads ``/info`` to
build its form and posts to ``/predict``. Kept as a Python string so that it ships inside the
package like any module.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nlptune</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
         padding: 0 1rem; color: #1d232a; }
  h1 { font-size: 1.4rem; margin: 0; }
  .meta { color: #5b6672; font-size: .9rem; margin-bottom: 1.2rem; }
  label { display: block; font-weight: 600; margin-top: .8rem; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem;
             border: 1px solid #b8c1cc; border-radius: 6px; }
  button { margin-top: .8rem; font: inherit; padding: .45rem 1.4rem; border: 0;
           border-radius: 6px; background: #2458c6; color: #fff; cursor: pointer; }
  button:disabled { background: #8ea6d8; }
  #result { margin-top: 1.5rem; }
  .row { display: grid; grid-template-columns: 9rem 1fr 4rem; gap: .6rem;
         align-items: center; margin: .3rem 0; }
  .bar { height: .9rem; background: #e3e8ef; border-radius: 4px; overflow: hidden; }
  .bar > div { height: 100%; background: #2458c6; }
  .text { padding: .8rem; border: 1px solid #e3e8ef; border-radius: 6px; line-height: 2.1; }
  mark { padding: .1rem .25rem; border-radius: 4px; background: #ffe58a; }
  mark small { font-size: .7rem; font-weight: 700; margin-left: .3rem; color: #6b4e00; }
  .error { color: #b00020; }
  details { margin-top: 1rem; color: #5b6672; }
  pre { background: #f5f7fa; padding: .6rem; overflow-x: auto; font-size: .85rem; }
</style>
</head>
<body>
<h1 id="title">nlptune</h1>
<div class="meta" id="meta">loading...</div>
<form id="form">
  <div id="fields"></div>
  <button id="go" type="submit">Predict</button>
</form>
<div id="result"></div>
<script>
const FIELDS = {
  text: [["text", "Text", 4]],
  pair: [["text", "First text", 3], ["text_pair", "Second text", 3]],
  qa: [["question", "Question", 2], ["context", "Context", 4]],
};
let info = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, attrs || {});
  for (const c of children) node.append(c);
  return node;
}

async function start() {
  info = await (await fetch("info")).json();
  document.getElementById("title").textContent = info.run.split("/").pop() + ": " + info.task;
  const dev = (info.metrics && info.metrics.dev) || {};
  const metric = info.main_metric in dev ? info.main_metric + " " + dev[info.main_metric] : "";
  document.getElementById("meta").textContent =
    [info.model.class || info.model.family, info.model.base, metric && "dev " + metric]
      .filter(Boolean).join(" \\u00b7 ");
  const fields = document.getElementById("fields");
  const example = info.example;
  for (const [name, title, rows] of FIELDS[info.input]) {
    const value = typeof example === "string" ? example : (example[name] || "");
    fields.append(el("label", {htmlFor: name, textContent: title}),
                  el("textarea", {id: name, name: name, rows: rows, value: value}));
  }
}

function payload() {
  const values = {};
  for (const [name] of FIELDS[info.input]) values[name] = document.getElementById(name).value;
  return info.input === "text" ? values.text : values;
}

function bars(pairs) {
  const box = el("div", {className: "labels"});
  for (const [label, score] of pairs) {
    const fill = el("div");
    fill.style.width = Math.round(Math.max(0, Math.min(1, score)) * 100) + "%";
    box.append(el("div", {className: "row label"},
                  el("b", {textContent: label}), el("div", {className: "bar"}, fill),
                  el("span", {className: "score", textContent: score.toFixed(3)})));
  }
  return box;
}

function hue(name) {  // one colour per entity type
  let h = 40;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function marked(text, spans) {
  const box = el("div", {className: "text"});
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue;
    box.append(text.slice(at, s.start));
    const tag = s.type ? el("small", {textContent: s.type}) : "";
    const title = "score " + s.score.toFixed(3);
    const mark = el("mark", {title: title}, text.slice(s.start, s.end), tag);
    if (s.type) mark.style.background = "hsl(" + hue(s.type) + ", 90%, 82%)";
    box.append(mark);
    at = s.end;
  }
  box.append(text.slice(at));
  return box;
}

function show(sent, out) {
  const result = document.getElementById("result");
  result.replaceChildren();
  if (out.error) {
    result.append(el("p", {className: "error", textContent: out.error}));
  } else if ("entities" in out) {
    const text = typeof sent === "string" ? sent : out.words.join(" ");
    result.append(marked(text, out.entities));
    if (!out.entities.length) result.append(el("p", {textContent: "no entities found"}));
  } else if ("answer" in out) {
    if (out.answer === "") result.append(el("p", {textContent: "no answer in the context"}));
    else result.append(el("p", {}, el("b", {textContent: "answer: "}), out.answer),
                       marked(sent.context, [{start: out.start, end: out.end, score: out.score}]));
  } else if ("labels" in out && "scores" in out) {
    result.append(bars(out.labels.map((l, i) => [l, out.scores[i]])));
  } else if ("label" in out) {
    result.append(bars([[out.label, out.score]]));
  } else if ("generated_text" in out) {
    result.append(el("p", {className: "text", textContent: out.generated_text}));
  } else if ("masks" in out) {
    out.masks.forEach(m => result.append(bars(m.map(f => [f.token_str, f.score]))));
  } else if ("score" in out) {
    result.append(el("p", {}, el("b", {textContent: "score: "}), out.score.toFixed(4)));
  }
  result.append(el("details", {}, el("summary", {textContent: "JSON"}),
                   el("pre", {textContent: JSON.stringify(out, null, 2)})));
}

document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("go");
  button.disabled = true;
  const sent = payload();
  try {
    const response = await fetch("predict", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(sent)});
    show(sent, await response.json());
  } catch (err) {
    show(sent, {error: String(err)});
  } finally {
    button.disabled = false;
  }
});
start().catch(err => {
  document.getElementById("meta").textContent = "can't reach the server: " + err;
});
</script>
</body>
</html>
"""
