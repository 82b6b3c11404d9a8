// Page chrome shared by the pages: the notice line, modal dialogs, the confirm dialog, and
// the header's server badge and sign-in button.

import { hasFeature, token } from "./api.js";
import { h } from "./format.js";

/**
 * Shows a message in `#notice` (a polite live region): kind "ok", "info", "warn" or
 * "error", with an optional link `{href, text}`. Messages other than errors fade out.
 */
export function notify(text, kind = "info", link = null) {
  const region = document.getElementById("notice");
  if (!region) return;
  const item = h("div", { className: "notice-item", dataset: { kind } },
    h("span", {}, text),
    link ? h("a", { href: link.href }, link.text) : null,
    h("button", { type: "button", className: "close", "aria-label": "Dismiss",
      onclick: () => item.remove() }, "×"));
  region.append(item);
  while (region.children.length > 4) region.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => item.remove(), link ? 15000 : 6000);
}

/** Wires a <dialog>: its [data-close] buttons close it; `onClose` runs however it closes. */
export function setupDialog(dialog, onClose) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target !== dialog) return;
    const box = dialog.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right
      && event.clientY >= box.top && event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });
  if (onClose) dialog.addEventListener("close", onClose);
  return dialog;
}

/** Opens a modal dialog, remembering what had the focus to give it back on close. */
export function openModal(dialog) {
  const before = document.activeElement;
  if (!dialog.open) dialog.showModal();
  dialog.addEventListener("close", () => {
    if (before && before.isConnected && typeof before.focus === "function") before.focus();
  }, { once: true });
}

let confirmDialog = null;

/** Asks a yes/no question in a modal dialog; resolves to true when confirmed. */
export function confirmAction(question, action = "Confirm", danger = false) {
  if (!confirmDialog) {
    confirmDialog = h("dialog", { className: "dialog small", "aria-labelledby": "confirm-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "confirm-title" }, "Please confirm"),
        h("p", { className: "confirm-text" }),
        h("div", { className: "dialog-buttons" },
          h("button", { value: "cancel", type: "submit" }, "Cancel"),
          h("button", { value: "ok", type: "submit", className: "primary confirm-ok" }, action))));
    document.body.append(confirmDialog);
  }
  confirmDialog.querySelector(".confirm-text").textContent = question;
  const ok = confirmDialog.querySelector(".confirm-ok");
  ok.textContent = action;
  ok.classList.toggle("danger", danger);
  confirmDialog.returnValue = "";
  openModal(confirmDialog);
  ok.focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"),
      { once: true });
  });
}

/** Fills the header's server line: liveion or liveman, version, auth state. */
export function renderServerBadge(info) {
  const cluster = hasFeature(info, "cluster");
  const name = cluster ? "liveman" : "liveion";
  for (const el of document.querySelectorAll("[data-server-name]")) el.textContent = name;
  document.body.dataset.server = name;
  const badge = document.getElementById("server-badge");
  if (badge) {
    badge.textContent = [info.version ? `v${info.version}` : "", cluster ? "cluster manager" : "SFU node"]
      .filter(Boolean).join(" · ");
  }
  return name;
}

/** The header's sign-in / sign-out button; `onSignIn()` opens the sign-in dialog. */
export function setupAuthButton(button, onSignIn) {
  const update = () => {
    const signedIn = Boolean(token.get());
    button.textContent = signedIn ? "Sign out" : "Sign in";
    button.setAttribute("aria-label", signedIn ? "Sign out (forget the token)" : "Sign in with a token");
  };
  button.addEventListener("click", () => {
    if (token.get()) {
      token.set("");
      notify("Signed out: the token is forgotten.", "info");
    } else onSignIn();
  });
  token.addEventListener("change", update);
  update();
}
