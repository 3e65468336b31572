"""``/docs``: the API's documentation as one self-contained page (no CDN, works offline).

FastAPI's default ``/docs`` loads Swagger UI's JavaScript and CSS from a CDN, so on an edge server
without internet access the page is blank. This page is plain HTML with a little inline JavaScript:
it reads ``/openapi.json`` and lists every endpoint with its parameters, request body and replies
(schemas resolved from ``components``), and has a form that posts a body to ``/v1/decide``.
"""

from __future__ import annotations

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.1em; margin-top: 1.6em; border-top: 1px solid #ccc;
padding-top: .8em; }}
.m {{ display: inline-block; min-width: 4em; font-weight: bold; color: #fff; border-radius: 3px;
text-align: center; padding: 0 .4em; margin-right: .5em; }}
.get {{ background: #2b7bb9; }} .post {{ background: #3c9a5f; }}
pre {{ background: #f5f5f5; padding: .6em; overflow-x: auto; font-size: .85em; }}
textarea {{ width: 100%; height: 14em; font-family: monospace; }}
</style></head>
<body>
<h1>{title}</h1>
<p id="desc"></p>
<p>OpenAPI document: <a href="openapi.json">openapi.json</a>. This page needs no internet access.</p>
<div id="paths">loading openapi.json ...</div>
<h2>Try <code>POST /v1/decide</code></h2>
<textarea id="body"></textarea><br>
<button id="send">POST /v1/decide</button>
<pre id="reply"></pre>
<script>
"use strict";
function resolve(spec, node, depth) {{
  if (depth > 8 || node === null || typeof node !== "object") return node;
  if (node["$ref"]) {{
    const name = node["$ref"].split("/").pop();
    return resolve(spec, spec.components.schemas[name], depth + 1);
  }}
  const out = Array.isArray(node) ? [] : {{}};
  for (const k of Object.keys(node)) out[k] = resolve(spec, node[k], depth + 1);
  return out;
}}
function el(tag, text, cls) {{
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}}
fetch("openapi.json").then(r => r.json()).then(spec => {{
  document.getElementById("desc").textContent = spec.info.description || "";
  const root = document.getElementById("paths");
  root.textContent = "";
  for (const [path, ops] of Object.entries(spec.paths)) {{
    for (const [method, op] of Object.entries(ops)) {{
      const h = el("h2");
      h.appendChild(el("span", method.toUpperCase(), "m " + method));
      h.appendChild(el("code", path));
      root.appendChild(h);
      if (op.summary) root.appendChild(el("p", op.summary));
      if (op.description) root.appendChild(el("p", op.description));
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) {{
        root.appendChild(el("h3", "request body"));
        root.appendChild(el("pre", JSON.stringify(resolve(spec, body.schema, 0), null, 2)));
      }}
      for (const [code, resp] of Object.entries(op.responses || {{}})) {{
        root.appendChild(el("h3", "reply " + code + ": " + (resp.description || "")));
        const c = resp.content && resp.content["application/json"];
        if (c && c.schema) root.appendChild(el("pre", JSON.stringify(resolve(spec, c.schema, 0), null, 2)));
      }}
    }}
  }}
}}).catch(err => {{ document.getElementById("paths").textContent = "could not read openapi.json: " + err; }});
fetch("v1/model").then(r => r.json()).then(info => {{
  const ues = (info.agents || ["ue_0"]).map(a => ({{ue_id: a, tasks_left: 200, local_time_left_s: 0.0,
    bits_left: 0.0, distance_m: 50.0}}));
  document.getElementById("body").value = JSON.stringify({{ues: ues, deterministic: true}}, null, 2);
}}).catch(() => {{}});
document.getElementById("send").onclick = () => {{
  fetch("v1/decide", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: document.getElementById("body").value}})
    .then(r => r.text().then(t => "HTTP " + r.status + "\\n" + t))
    .then(t => {{ document.getElementById("reply").textContent = t; }});
}};
</script>
</body></html>
"""


def docs_page(title: str) -> str:
    """The page for an app titled ``title`` (HTML-escaped)."""
    import html

    return DOCS_HTML.format(title=html.escape(title))
