// Renders /api/v1/openapi.json as a readable reference. No dependencies, no network
// access beyond this origin, and no HTML parsing: every text goes through textContent.
"use strict";

(function () {
  const MAX_DEPTH = 6;
  const METHODS = ["get", "post", "put", "patch", "delete"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function resolve(doc, schema) {
    if (schema && schema.$ref) {
      const name = schema.$ref.split("/").pop();
      const target = ((doc.components || {}).schemas || {})[name];
      return { name, schema: target || {} };
    }
    return { name: null, schema: schema || {} };
  }

  // A TypeScript-like rendering of a schema, indented, with descriptions as comments.
  function render(doc, schema, depth, seen) {
    const pad = "  ".repeat(depth);
    const { name, schema: s } = resolve(doc, schema);
    if (name && (seen.has(name) || depth >= MAX_DEPTH)) return name;
    const nextSeen = name ? new Set([...seen, name]) : seen;
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
    for (const [key, joiner] of [["oneOf", " | "], ["anyOf", " | "], ["allOf", " & "]]) {
      if (Array.isArray(s[key])) {
        const parts = [...new Set(s[key].map((part) => render(doc, part, depth, nextSeen)))];
        return parts.join(joiner);
      }
    }
    let types = Array.isArray(s.type) ? s.type.slice() : s.type ? [s.type] : [];
    if (types.length === 1 && types[0] === "null") return "null";
    const nullable = s.nullable || types.includes("null");
    types = types.filter((t) => t !== "null");
    let out;
    if (types.includes("array") || s.items) {
      const inner = render(doc, s.items || {}, depth, nextSeen);
      out = /[|&]/.test(inner) ? "(" + inner + ")[]" : inner + "[]";
    } else if (types.includes("object") || s.properties) {
      const props = Object.entries(s.properties || {});
      if (props.length === 0) {
        out = s.additionalProperties ? "{ [key: string]: " + render(doc, s.additionalProperties, depth, nextSeen) + " }" : "object";
      } else {
        const required = new Set(s.required || []);
        const lines = props.map(([prop, ps]) => {
          const r = resolve(doc, ps).schema;
          const desc = (ps.description || r.description || "").split("\n")[0];
          const comment = desc ? "  // " + desc : "";
          const fmt = r.format ? " (" + r.format + ")" : "";
          return pad + "  " + prop + (required.has(prop) ? "" : "?") + ": " +
            render(doc, ps, depth + 1, nextSeen) + fmt + comment;
        });
        out = "{\n" + lines.join("\n") + "\n" + pad + "}";
      }
    } else if (types.length) {
      out = types.join(" | ");
    } else {
      out = name || "any";
    }
    return nullable ? out + " | null" : out;
  }

  // `shown` holds the named schemas already printed in this operation: later uses (the
  // same Problem body for every error status) print just the name.
  function schemaBlock(doc, content, shown) {
    const wrap = el("div");
    for (const [type, media] of Object.entries(content || {})) {
      const { name } = resolve(doc, media.schema || {});
      if (name && shown.has(name)) {
        wrap.append(el("div", {}, el("code", {}, type), " ", el("code", {}, name), " (as above)"));
        continue;
      }
      wrap.append(el("div", {}, el("code", {}, type)));
      if (media.schema) {
        if (name) shown.add(name);
        wrap.append(el("pre", {}, (name ? name + " " : "") + render(doc, media.schema, 0, new Set())));
      }
    }
    return wrap;
  }

  function operation(doc, path, method, op) {
    const secured = (op.security || doc.security || []).some((req) => Object.keys(req).length > 0);
    const anonymousOk = (op.security || []).some((req) => Object.keys(req).length === 0);
    const summaryText = op.summary || (op.description || "").split("\n")[0];
    const details = el("details", { class: "op" });
    details.dataset.search = (method + " " + path + " " + summaryText).toLowerCase();
    details.append(el("summary", {},
      el("span", { class: "method " + method }, method),
      el("span", { class: "path" }, path),
      el("span", { class: "summary" }, summaryText),
      secured ? el("span", { class: "lock" }, anonymousOk ? "bearer optional" : "bearer") : null));
    const body = el("div", { class: "body" });
    const shown = new Set();
    if (op.description && op.description !== summaryText) {
      for (const para of op.description.split(/\n\n+/)) body.append(el("p", {}, para));
    }
    const params = op.parameters || [];
    if (params.length) {
      const table = el("table", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Type"), el("th", {}, "Description")));
      for (const p of params) {
        table.append(el("tr", {},
          el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
          el("td", {}, p.in),
          el("td", {}, el("code", {}, render(doc, p.schema || {}, 0, new Set()))),
          el("td", {}, p.description || "")));
      }
      body.append(el("h4", {}, "Parameters"), table);
    }
    if (op.requestBody) {
      body.append(el("h4", {}, "Request body" + (op.requestBody.required ? " (required)" : "")));
      if (op.requestBody.description) body.append(el("p", {}, op.requestBody.description));
      body.append(schemaBlock(doc, op.requestBody.content, shown));
    }
    const responses = Object.entries(op.responses || {});
    if (responses.length) {
      body.append(el("h4", {}, "Responses"));
      for (const [status, resp] of responses) {
        const r = resolve(doc, resp).schema;
        body.append(el("div", {},
          el("span", { class: "status s" + status[0] }, status), " ", r.description || ""));
        if (r.content) body.append(schemaBlock(doc, r.content, shown));
      }
    }
    details.append(body);
    return details;
  }

  function show(doc) {
    const info = doc.info || {};
    document.getElementById("title").textContent = (info.title || "API") + (info.version ? " " + info.version : "") + " — API reference";
    document.getElementById("description").textContent = info.description || "";
    const byTag = new Map();
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push(operation(doc, "/api/v1" + path, method, op));
      }
    }
    const content = document.getElementById("content");
    const toc = document.getElementById("toc");
    content.replaceChildren();
    toc.replaceChildren();
    for (const tag of [...byTag.keys()].sort()) {
      const id = "tag-" + tag.replace(/[^a-z0-9_-]/gi, "-");
      toc.append(el("a", { href: "#" + id }, tag));
      const section = el("section", { id }, el("h2", { class: "tag" }, tag));
      for (const op of byTag.get(tag)) section.append(op);
      content.append(section);
    }
    document.getElementById("filter").addEventListener("input", (event) => {
      const q = event.target.value.trim().toLowerCase();
      for (const section of content.querySelectorAll("section")) {
        let visible = 0;
        for (const op of section.querySelectorAll("details.op")) {
          const match = !q || op.dataset.search.includes(q);
          op.classList.toggle("hidden", !match);
          if (match) visible += 1;
        }
        section.classList.toggle("hidden", visible === 0);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    fetch("/api/v1/openapi.json", { headers: { Accept: "application/json" } })
      .then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(show)
      .catch((e) => {
        const content = document.getElementById("content");
        content.replaceChildren(el("p", { class: "error" }, "Could not load /api/v1/openapi.json: " + e.message));
      });
  });
})();
