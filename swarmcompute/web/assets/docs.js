// Interactive API docs from /api/v1/openapi.json, offline (no Swagger UI bundle, no CDN): every
// operation with its parameters, and a "try it" form that sends the request with your token.
"use strict";

const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("swarmToken") || "";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function operation(path, method, op) {
  const params = op.parameters || [];
  const inputs = {};
  const out = el("pre", {});
  const body = op.requestBody ? el("textarea", { rows: "3", cols: "60" }, method === "post" && path.endsWith("/jobs") ? '{"argv": "echo hi"}' : "{}") : null;
  async function send(e) {
    e.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const p of params) {
      const v = inputs[p.name].value;
      if (!v) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(v));
      else query.set(p.name, v);
    }
    if ([...query].length) url += "?" + query;
    localStorage.setItem("swarmToken", tokenInput.value);
    const res = await fetch(url, {
      method: method.toUpperCase(),
      headers: { "Authorization": `Bearer ${tokenInput.value}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? body.value : undefined,
    });
    out.textContent = `${res.status} ${res.statusText}\n` + (await res.text()).slice(0, 20000);
  }
  const form = el("form", { onsubmit: send },
    ...params.map((p) => el("label", {}, `${p.name} (${p.in}) `, inputs[p.name] = el("input", { placeholder: p.description || "" }), " ")),
    body ? el("div", {}, body) : "",
    el("button", { type: "submit" }, "try it"));
  return el("section", {}, el("h2", {}, `${method.toUpperCase()} ${path}`), el("p", {}, op.summary || ""), form, out);
}

fetch("/api/v1/openapi.json").then((r) => r.json()).then((doc) => {
  const ops = document.getElementById("ops");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) ops.append(operation(path, method, op));
  }
});
