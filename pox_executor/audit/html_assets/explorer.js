// pox html: the run explorer. Reads the JSON embedded in the page, draws the job DAG on a canvas
// (pan, zoom, level of detail, only what is in view), searches file names and jobs, and shows a
// panel per job. Data from the run is put into the page with textContent only, never as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("pox-data").textContent);
  const jobs = data.jobs;
  const files = data.files;
  const W = data.layout.node_width;
  const H = data.layout.node_height;
  const $ = (id) => document.getElementById(id);

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (key === "text") node.textContent = value;
        else if (key === "cls") node.className = value;
        else node.setAttribute(key, value);
      }
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) {
        node.append(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }
  function short(hash) {
    return hash ? String(hash).slice(0, 16) + "\u2026" : "-";
  }
  function fmt(value) {
    return value === null || value === undefined || value === "" ? "-" : String(value);
  }

  // -- indexes -------------------------------------------------------------------------------
  const consumers = files.map(() => []);
  const producers = files.map(() => []);
  jobs.forEach((job, i) => {
    for (const [file] of job.inputs) consumers[file].push(i);
    for (const file of job.outputs) producers[file].push(i);
  });
  const parents = jobs.map(() => []);
  const children = jobs.map(() => []);
  for (const [a, b] of data.edges) {
    parents[b].push(a);
    children[a].push(b);
  }
  const byLine = new Map(jobs.map((job, i) => [job.line, i]));
  const rules = [...new Set(jobs.map((job) => job.rule))].sort();
  const palette = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b",
    "#9d755d", "#ff9da6", "#bab0ac", "#2f4b7c", "#a05195", "#665191", "#d45087", "#ffa600"];
  const ruleColor = new Map(rules.map((rule, i) => [rule, palette[i % palette.length]]));

  // -- summary ---------------------------------------------------------------------------------
  function summary() {
    const run = data.run;
    const v = data.verification;
    $("run-title").textContent = "PoX run " + run.run_id;
    const verdict = $("verdict");
    const simulated = v.simulated || jobs.some((job) => job.simulated);
    verdict.textContent = "verification: " + v.verdict + (v.ok && simulated ? " \u2014 integrity only, evidence SIMULATED" : "");
    verdict.className = "badge " + (v.ok ? (v.facts.status === "incomplete" || simulated ? "warn" : "ok") : "bad");
    if (simulated) {
      const box = $("simulated-warning");
      box.hidden = false;
      box.append(el("strong", { text: "SIMULATED EVIDENCE \u2014 NOT A TEE. " }),
        el("span", { text: v.simulated_text.charAt(0).toUpperCase() + v.simulated_text.slice(1) + "." }));
      document.body.classList.add("simulated");
    }
    const facts = [
      ["jobs", el("span", { id: "job-count", text: String(jobs.length) })],
      ["status", run.status],
      ["rules", String(rules.length)],
      ["backend", run.backend],
      ["evidence", [...new Set(jobs.map((job) => job.evidence))].join(", ")],
      ["started", run.started],
      ["finished", run.finished],
      ["checkpoint size", run.tree_size],
      ["root", run.root],
      ["snakemake", run.snakemake_version],
      ["pox", run.pox_version],
      ["errors / warnings", v.counts.error + " / " + v.counts.warning],
    ];
    for (const [name, value] of facts) {
      const dd = el("dd", { title: typeof value === "string" ? value : "" },
        [value instanceof Node ? value : fmt(value)]);
      $("facts").append(el("div", null, [el("dt", { text: name }), dd]));
    }
    const list = $("findings");
    for (const finding of v.findings) {
      list.append(el("li", { cls: finding.level }, [
        finding.level.toUpperCase() + " " + finding.check + (finding.where ? " [" + finding.where + "]" : "") +
        ": " + finding.message]));
    }
    const perJob = jobs.reduce((n, job) => n + job.findings.length, 0);
    $("findings-summary").textContent = "Findings: " + v.findings_total + " about the run" +
      (v.findings_total > v.findings.length ? " (first " + v.findings.length + " listed)" : "") +
      ", " + perJob + " about single jobs (in their panels)";
    if (run.chain) {
      const chain = run.chain;
      $("chain-box").hidden = false;
      const sent = chain.transactions.filter((tx) => tx.tx_hash);
      $("chain-summary").textContent = "Chain: " + chain.profile + " (chain id " + chain.chain_id + "), " +
        chain.anchors.length + " anchors, " + sent.length + " transactions, " + chain.pending + " pending";
      const table = el("table");
      for (const tx of sent) table.append(el("tr", null, [el("td", { text: tx.kind }),
        el("td", { cls: "mono" }, [txLink(tx)]), el("td", { text: "block " + fmt(tx.block) })]));
      $("chain").append(table);
    }
    for (const rule of rules) {
      const swatch = el("span", { cls: "swatch" });
      swatch.style.background = ruleColor.get(rule);
      $("legend").append(el("span", null, [swatch, rule]));
    }
  }
  function txLink(tx) {
    if (tx.link && /^https?:\/\//.test(tx.link)) {
      return el("a", { href: tx.link, rel: "noopener noreferrer", target: "_blank", text: tx.tx_hash });
    }
    return el("span", { text: tx.tx_hash });
  }

  // -- canvas: view transform, drawing ----------------------------------------------------------
  const canvas = $("dag");
  const ctx = canvas.getContext("2d");
  const view = { k: 1, x: 0, y: 0 };
  let selected = -1;
  let hits = new Set();
  let pending = false;
  let drawnNodes = 0;

  function size() {
    const ratio = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    return box;
  }
  function fit() {
    const box = canvas.getBoundingClientRect();
    if (!jobs.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const job of jobs) {
      x0 = Math.min(x0, job.x); y0 = Math.min(y0, job.y);
      x1 = Math.max(x1, job.x + W); y1 = Math.max(y1, job.y + H);
    }
    const k = Math.min((box.width - 40) / (x1 - x0), (box.height - 40) / (y1 - y0), 1.5);
    view.k = Math.max(k, 0.002);
    view.x = (box.width - (x1 - x0) * view.k) / 2 - x0 * view.k;
    view.y = (box.height - (y1 - y0) * view.k) / 2 - y0 * view.k;
    redraw();
  }
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  }
  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    if (canvas.width !== Math.round(box.width * ratio) || canvas.height !== Math.round(box.height * ratio)) size();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio * view.k, 0, 0, ratio * view.k, ratio * view.x, ratio * view.y);
    const vx0 = -view.x / view.k, vy0 = -view.y / view.k;
    const vx1 = vx0 + box.width / view.k, vy1 = vy0 + box.height / view.k;
    const visible = (job) => job.x + W >= vx0 && job.x <= vx1 && job.y + H >= vy0 && job.y <= vy1;
    // edges: one path, only those whose bounding box meets the view
    ctx.lineWidth = 1 / view.k;
    ctx.strokeStyle = view.k < 0.2 ? "rgba(90,100,120,0.25)" : "rgba(90,100,120,0.55)";
    ctx.beginPath();
    for (const [a, b] of data.edges) {
      const p = jobs[a], c = jobs[b];
      const ax = p.x + W / 2, ay = p.y + H, bx = c.x + W / 2, by = c.y;
      if (Math.max(ax, bx) < vx0 || Math.min(ax, bx) > vx1 || Math.max(ay, by) < vy0 || Math.min(ay, by) > vy1) continue;
      ctx.moveTo(ax, ay);
      if (view.k > 0.3) ctx.bezierCurveTo(ax, ay + 30, bx, by - 30, bx, by);
      else ctx.lineTo(bx, by);
    }
    ctx.stroke();
    if (selected >= 0) {
      ctx.strokeStyle = "#1d4ed8";
      ctx.lineWidth = 2.5 / view.k;
      ctx.beginPath();
      const s = jobs[selected];
      for (const other of parents[selected]) edge(jobs[other], s);
      for (const other of children[selected]) edge(s, jobs[other]);
      ctx.stroke();
    }
    // nodes, then outlines, then labels when they are readable
    let count = 0;
    const labels = view.k * W >= 70;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i];
      if (!visible(job)) continue;
      count++;
      ctx.fillStyle = ruleColor.get(job.rule);
      ctx.globalAlpha = hits.size && !hits.has(i) ? 0.25 : 1;
      ctx.fillRect(job.x, job.y, W, H);
      if (job.simulated && view.k * W >= 20) {
        ctx.fillStyle = "#c2410c";
        ctx.fillRect(job.x, job.y, 6, H);
      }
      ctx.globalAlpha = 1;
      if (job.status !== "succeeded" || !job.verified) {
        ctx.strokeStyle = "#b91c1c";
        ctx.lineWidth = Math.max(3, 2 / view.k);
        ctx.setLineDash(job.verified ? [] : [8, 4]);
        ctx.strokeRect(job.x, job.y, W, H);
        ctx.setLineDash([]);
      }
      if (hits.has(i)) {
        ctx.strokeStyle = "#facc15";
        ctx.lineWidth = Math.max(4, 3 / view.k);
        ctx.strokeRect(job.x - 3, job.y - 3, W + 6, H + 6);
      }
      if (labels) {
        ctx.fillStyle = "#fff";
        let text = job.label;
        if (job.status !== "succeeded") text = "\u2716 " + text;
        else if (!job.verified) text = "! " + text;
        while (text.length > 3 && ctx.measureText(text).width > W - 14) text = text.slice(0, -2);
        if (text !== job.label && !text.startsWith("\u2716") && !text.startsWith("!")) text += "\u2026";
        ctx.fillText(text, job.x + 9, job.y + H / 2);
      }
    }
    if (selected >= 0) {
      const s = jobs[selected];
      ctx.strokeStyle = "#1d4ed8";
      ctx.lineWidth = Math.max(4, 4 / view.k);
      ctx.strokeRect(s.x - 5, s.y - 5, W + 10, H + 10);
    }
    drawnNodes = count;
    if (window.poxRenderedAt === undefined) window.poxRenderedAt = performance.now();
    canvas.dataset.drawnNodes = String(count);
    canvas.dataset.zoom = view.k.toFixed(4);
    document.body.dataset.rendered = "1";
  }
  function edge(p, c) {
    const ax = p.x + W / 2, ay = p.y + H, bx = c.x + W / 2, by = c.y;
    ctx.moveTo(ax, ay);
    ctx.bezierCurveTo(ax, ay + 30, bx, by - 30, bx, by);
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.min(Math.max(view.k * factor, 0.001), 8);
    view.x = cx - (cx - view.x) * (k / view.k);
    view.y = cy - (cy - view.y) * (k / view.k);
    view.k = k;
    redraw();
  }
  function centerOn(i) {
    const box = canvas.getBoundingClientRect();
    const job = jobs[i];
    view.k = Math.max(view.k, 0.8);
    view.x = box.width / 2 - (job.x + W / 2) * view.k;
    view.y = box.height / 2 - (job.y + H / 2) * view.k;
    redraw();
  }
  function jobAt(px, py) {
    const x = (px - view.x) / view.k, y = (py - view.y) / view.k;
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i];
      if (x >= job.x && x <= job.x + W && y >= job.y && y <= job.y + H) return i;
    }
    return -1;
  }

  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    redraw();
  });
  canvas.addEventListener("pointerup", (e) => {
    const moved = drag && drag.moved;
    drag = null;
    if (moved) return;
    const box = canvas.getBoundingClientRect();
    const i = jobAt(e.clientX - box.left, e.clientY - box.top);
    if (i >= 0) select(i, false);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - box.left, e.clientY - box.top);
  }, { passive: false });
  canvas.addEventListener("keydown", (e) => {
    const box = canvas.getBoundingClientRect();
    const step = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] }[e.key];
    if (step) { view.x += step[0]; view.y += step[1]; redraw(); e.preventDefault(); }
    else if (e.key === "+" || e.key === "=") zoomAt(1.25, box.width / 2, box.height / 2);
    else if (e.key === "-") zoomAt(0.8, box.width / 2, box.height / 2);
  });
  $("zoom-in").addEventListener("click", () => { const b = canvas.getBoundingClientRect(); zoomAt(1.4, b.width / 2, b.height / 2); });
  $("zoom-out").addEventListener("click", () => { const b = canvas.getBoundingClientRect(); zoomAt(1 / 1.4, b.width / 2, b.height / 2); });
  $("zoom-fit").addEventListener("click", fit);
  window.addEventListener("resize", redraw);

  // -- search ------------------------------------------------------------------------------------
  const MAX_SHOWN = 200;
  const lowerNames = files.map((f) => f[0].toLowerCase());
  function search(query) {
    const q = query.trim().toLowerCase();
    const list = $("search-results");
    list.replaceChildren();
    hits = new Set();
    if (!q) {
      $("search-count").textContent = "";
      list.dataset.hits = "0";
      redraw();
      return;
    }
    let fileHits = 0;
    const rows = [];
    for (let f = 0; f < files.length; f++) {
      if (!lowerNames[f].includes(q)) continue;
      fileHits++;
      const touching = producers[f].concat(consumers[f]);
      touching.forEach((i) => hits.add(i));
      if (rows.length < MAX_SHOWN) {
        const made = producers[f].length ? "made by " + jobs[producers[f][0]].label : "raw input";
        rows.push([files[f][0], made + ", read by " + consumers[f].length + " jobs",
          producers[f].length ? producers[f][0] : consumers[f][0], "file"]);
      }
    }
    let jobHits = 0;
    for (let i = 0; i < jobs.length; i++) {
      if (!jobs[i].label.toLowerCase().includes(q)) continue;
      jobHits++;
      hits.add(i);
      if (rows.length < MAX_SHOWN) rows.push([jobs[i].label, "job, log line " + jobs[i].line, i, "job"]);
    }
    for (const [title, detail, target, kind] of rows) {
      const item = el("li", { tabindex: "0", "data-kind": kind, "data-job": String(target) },
        [title, el("small", { text: detail })]);
      const go = () => { if (target !== undefined) select(target, true); };
      item.addEventListener("click", go);
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      list.append(item);
    }
    list.dataset.hits = String(fileHits + jobHits);
    $("search-count").textContent = fileHits + " files, " + jobHits + " jobs" +
      (rows.length < fileHits + jobHits ? " (first " + rows.length + " listed)" : "");
    redraw();
  }
  let timer = 0;
  $("search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => search(e.target.value), 120);
  });

  // -- the job panel --------------------------------------------------------------------------
  function jump(i) {
    const link = el("a", { cls: "jump", tabindex: "0", text: jobs[i].label + " (line " + jobs[i].line + ")" });
    link.addEventListener("click", () => select(i, true));
    return link;
  }
  function table(rows) {
    const t = el("table");
    for (const [name, value] of rows) {
      t.append(el("tr", null, [el("td", { text: name }), el("td", null, [value instanceof Node ? value : fmt(value)])]));
    }
    return t;
  }
  function select(i, center) {
    selected = i;
    const job = jobs[i];
    const panel = $("job-panel");
    panel.replaceChildren();
    panel.dataset.job = String(job.line);
    panel.append(el("h2", { text: job.label }));
    const status = job.status === "succeeded" ? "succeeded" : job.status.toUpperCase() + " (exit code " + job.exit_code + ")";
    panel.append(table([
      ["rule", job.rule], ["job id", job.jobid], ["attempt", job.attempt], ["status", status],
      ["log line", job.line], ["envelope", el("span", { cls: "mono", text: job.envelope })],
      ["started", job.started], ["finished", job.finished],
      ["wildcards", JSON.stringify(job.wildcards)], ["threads", job.threads],
    ]));

    panel.append(el("h3", { text: "Verification" }));
    const verdict = el("p", { id: "job-verification" });
    if (job.verified && data.verification.ok) verdict.append(el("span", { cls: "badge ok", text: "verified" }), " no check failed for this record");
    else if (job.verified) verdict.append(el("span", { cls: "badge warn", text: "record ok" }), " no check failed for this record, but the run did not verify (see the top)");
    else verdict.append(el("span", { cls: "badge bad", text: "FAILED" }), " checks failed for this record:");
    panel.append(verdict);
    if (job.findings.length) {
      panel.append(el("ul", null, job.findings.map((f) => el("li", { cls: f.level, text: f.level.toUpperCase() + " " + f.check + ": " + f.message }))));
    }

    panel.append(el("h3", { text: "Evidence" }));
    const evidence = el("span", null, [job.evidence]);
    if (job.simulated) evidence.append(" ", el("span", { cls: "sim-tag", text: "SIMULATED: no TEE vouches for this record" }));
    panel.append(table([
      ["type", evidence], ["backend", job.backend], ["builder", job.builder],
      ["measurement", el("span", { cls: "mono", text: fmt(job.measurement) })],
      ["image", el("span", { cls: "mono", text: fmt(job.image) })],
      ["isolated", job.isolated ? "yes: " + job.isolation : "NO: " + job.isolation],
    ]));

    panel.append(el("h3", { text: "Inputs (" + job.inputs.length + ")" }));
    panel.append(el("ul", { id: "job-inputs" }, job.inputs.map(([f, producer, origin]) => el("li", null, [
      el("span", { cls: "mono", text: files[f][0] }), " ", el("small", { text: short(files[f][1]) }), " \u2190 ",
      producer >= 0 ? jump(producer) : el("span", { text: origin === "run" ? "an earlier run" : "raw input" }),
    ]))));
    panel.append(el("h3", { text: "Outputs (" + job.outputs.length + ")" }));
    panel.append(el("ul", { id: "job-outputs" }, job.outputs.map((f) => {
      const readers = consumers[f].filter((c) => c !== i);
      const item = el("li", null, [el("span", { cls: "mono", text: files[f][0] }), " ",
        el("small", { text: short(files[f][1]) + (files[f][2] !== null ? ", " + files[f][2] + " bytes" : "") })]);
      if (readers.length) {
        const shown = readers.slice(0, 20);
        item.append(" \u2192 ");
        shown.forEach((c, n) => { if (n) item.append(", "); item.append(jump(c)); });
        if (readers.length > shown.length) item.append(" and " + (readers.length - shown.length) + " more");
      }
      return item;
    })));
    if (job.missing_outputs.length) panel.append(el("p", { cls: "bad", text: "MISSING outputs: " + job.missing_outputs.join(", ") }));

    panel.append(el("h3", { text: "Code" }));
    for (const code of job.code) {
      panel.append(el("div", null, [el("span", { cls: "mono", text: code.name }), " ", el("small", { text: short(code.sha256) })]));
      if (code.command) panel.append(el("pre", { text: code.command }));
      if (code.source && data.sources[code.source] !== undefined) {
        panel.append(el("details", null, [el("summary", { text: "source (matches the recorded sha256)" }), el("pre", { text: data.sources[code.source] })]));
      }
    }
    if (!job.code.length) panel.append(el("p", { cls: "hint", text: "no code (an action-less rule)" }));
    panel.append(el("h3", { text: "Parameters and resources" }));
    panel.append(el("pre", { text: JSON.stringify({ params: job.params, resources: job.resources }, null, 1) }));

    panel.append(el("h3", { text: "Environment" }));
    panel.append(table(job.environment.map((env) => [env.name, el("span", { cls: "mono", text: fmt(env.sha256) + (Object.keys(env.annotations).length > 1 ? "  " + JSON.stringify(env.annotations) : "") })])));

    panel.append(el("h3", { text: "Chain transactions" }));
    if (job.chain.length) panel.append(table(job.chain.map((tx) => [tx.kind, el("span", { cls: "mono" }, [txLink(tx), " block " + fmt(tx.block)])])));
    else panel.append(el("p", { cls: "hint", text: data.run.chain ? "none recorded for this job" : "the run is not anchored on a chain" }));

    if (parents[i].length) {
      panel.append(el("h3", { text: "Consumed from" }));
      panel.append(el("ul", null, parents[i].map((p) => el("li", null, [jump(p)]))));
    }
    if (location.hash !== "#job=" + job.line) history.replaceState(null, "", "#job=" + job.line);
    if (center) centerOn(i);
    else redraw();
  }

  // -- start -------------------------------------------------------------------------------------
  summary();
  size();
  fit();
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("q")) { $("search").value = params.get("q"); search(params.get("q")); }
  if (params.has("job") && byLine.has(Number(params.get("job")))) select(byLine.get(Number(params.get("job"))), true);
  draw();
  // where job i's centre is on screen (client coordinates), for tests and for scripting
  function screenPosition(i) {
    const box = canvas.getBoundingClientRect();
    const job = jobs[i];
    return { x: box.left + view.x + (job.x + W / 2) * view.k, y: box.top + view.y + (job.y + H / 2) * view.k };
  }
  function timed(action) {
    const start = performance.now();
    action();
    return performance.now() - start;
  }
  window.poxExplorer = {
    jobs: jobs.length, drawnNodes: () => drawnNodes, select, search, fit, screenPosition,
    timeDraw: () => timed(draw), timeSearch: (q) => timed(() => search(q)),
  };
})();
