// liveman's parts of the dashboard: the nodes table and the token-minting dialog.

import { api, HttpError } from "./api.js";
import { ago, bitrate, h } from "./format.js";
import { openModal, setupDialog } from "./ui.js";

const POLL_MS = 2000;

function loadText(load) {
  if (!load) return "—";
  const parts = [`${load.sessions ?? 0} sessions`];
  if (load.bitrate !== undefined) parts.push(bitrate(load.bitrate));
  if (load.cpu) parts.push(`CPU ${Math.round(load.cpu * 100)}%`);
  return parts.join(" · ");
}

/** `GET /api/nodes/` every 2 s: alias, url, status, last seen, latency, load, streams. */
export class NodesPanel {
  constructor(panel) {
    this.panel = panel;
    this.body = panel.querySelector("tbody");
    this.status = panel.querySelector(".panel-status");
    this.timer = null;
  }

  start() {
    clearTimeout(this.timer);
    this.poll();
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      const nodes = await api("/api/nodes/");
      this.render(Array.isArray(nodes) ? nodes : []);
      const running = nodes.filter((n) => n.status === "running").length;
      this.status.textContent = `${running} of ${nodes.length} running`;
      this.status.classList.remove("error");
    } catch (err) {
      this.status.textContent = `Nodes unavailable: ${err.message}`;
      this.status.classList.add("error");
      if (err instanceof HttpError && err.status === 401) return; // the sign-in dialog asks
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render(nodes) {
    if (!nodes.length) {
      this.body.replaceChildren(h("tr", {}, h("td", { colSpan: 7, className: "empty" },
        "No nodes. Add [[nodes]] to liveman.toml, or start liveion with a [liveman] section.")));
      return;
    }
    const now = Date.now();
    this.body.replaceChildren(...nodes
      .slice()
      .sort((a, b) => String(a.alias).localeCompare(String(b.alias)))
      .map((node) => h("tr", { dataset: { node: node.alias } },
        h("td", { className: "alias" }, node.alias),
        h("td", { className: "url" }, h("code", {}, node.url ?? "")),
        h("td", { className: "node-status" },
          h("span", { className: `badge node-${node.status}`, title: node.error || "" }, node.status),
          node.error ? h("span", { className: "node-error" }, ` ${node.error}`) : null),
        h("td", { className: "last-seen" }, node.lastSeen ? ago(node.lastSeen, now) : "never"),
        h("td", { className: "latency" },
          node.latency === null || node.latency === undefined ? "—" : `${Math.round(node.latency)} ms`),
        h("td", { className: "load" }, loadText(node.load)),
        h("td", { className: "node-streams" }, String(node.streams ?? 0)))));
  }
}

/** `POST /api/token`: a JWT for one stream (or "*") with the chosen rights and lifetime. */
export class TokenDialog {
  constructor(dialog) {
    this.dialog = setupDialog(dialog);
    this.form = dialog.querySelector("form");
    this.result = dialog.querySelector(".token-result");
    this.output = dialog.querySelector("#minted-token");
    this.error = dialog.querySelector(".status");
    this.links = dialog.querySelector(".token-links");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.mint();
    });
    dialog.querySelector("#copy-token").addEventListener("click", () => this.copy());
  }

  open(stream) {
    this.form.elements.id.value = stream;
    this.result.hidden = true;
    this.error.hidden = true;
    openModal(this.dialog);
    this.form.elements.id.focus();
  }

  async mint() {
    const { id, duration, subscribe, publish, admin } = this.form.elements;
    const body = {
      id: id.value.trim() || "*",
      duration: Number(duration.value),
      subscribe: subscribe.checked,
      publish: publish.checked,
      admin: admin.checked,
    };
    this.error.hidden = true;
    try {
      const answer = await api("/api/token", { method: "POST", body });
      this.output.value = answer.access_token;
      this.result.hidden = false;
      const links = [];
      if (body.id !== "*" && body.subscribe) {
        const href = `player.html?id=${encodeURIComponent(body.id)}&token=${encodeURIComponent(answer.access_token)}`;
        links.push(h("a", { href, target: "_blank", rel: "noopener" }, "Open the player with this token"));
      }
      this.links.replaceChildren(...links);
      this.output.focus();
      this.output.select();
    } catch (err) {
      this.error.hidden = false;
      this.error.dataset.kind = "error";
      this.error.textContent = err instanceof HttpError && err.status === 409
        ? "liveman has no [auth] secret, so it cannot sign tokens."
        : `Minting failed: ${err.message}`;
    }
  }

  async copy() {
    this.output.select();
    try {
      await navigator.clipboard.writeText(this.output.value);
      this.dialog.querySelector("#copy-token").textContent = "Copied";
    } catch {
      this.dialog.querySelector("#copy-token").textContent = "Press Ctrl+C";
    }
    setTimeout(() => { this.dialog.querySelector("#copy-token").textContent = "Copy"; }, 2000);
  }
}
