// The sign-in dialog: a bearer token (any server with [auth]), or an account on liveman
// (POST /api/login -> access_token). Whatever is accepted is kept like the token.

import { api, hasFeature, HttpError, token } from "./api.js";
import { openModal, setupDialog } from "./ui.js";

export class AuthDialog {
  /**
   * `dialog` holds #auth-message, #login-form (username, password) and #token-form (token);
   * `check(tokenValue)` resolves when the server accepts the token (e.g. by listing streams).
   */
  constructor(dialog, info, check) {
    this.dialog = setupDialog(dialog);
    this.check = check;
    this.message = dialog.querySelector("#auth-message");
    this.error = dialog.querySelector("#auth-error");
    this.loginForm = dialog.querySelector("#login-form");
    this.tokenForm = dialog.querySelector("#token-form");
    this.loginForm.hidden = !hasFeature(info, "cluster");
    dialog.querySelector("#login-divider").hidden = this.loginForm.hidden;
    this.tokenForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.useToken(this.tokenForm.elements.token.value);
    });
    this.loginForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.login(this.loginForm.elements.username.value, this.loginForm.elements.password.value);
    });
  }

  /** Opens the dialog with `reason` (why a token is needed), focusing the first field. */
  show(reason = "") {
    this.message.textContent = reason || "This server needs a token.";
    this.setError("");
    if (!this.dialog.open) openModal(this.dialog);
    const first = this.loginForm.hidden ? this.tokenForm.elements.token
      : this.loginForm.elements.username;
    first.focus();
  }

  setError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  busy(form, on) {
    for (const el of form.elements) el.disabled = on;
  }

  async useToken(value) {
    const candidate = value.trim();
    if (!candidate) {
      this.setError("Enter a token.");
      return;
    }
    this.busy(this.tokenForm, true);
    try {
      await this.check(candidate);
      this.tokenForm.reset();
      this.accept(candidate);
    } catch (err) {
      this.setError(err instanceof HttpError && err.status === 401
        ? `The server refused this token${err.reason ? `: ${err.reason}` : ""}.`
        : `Could not check the token: ${err.message}`);
    } finally {
      this.busy(this.tokenForm, false);
    }
  }

  async login(username, password) {
    this.busy(this.loginForm, true);
    try {
      const answer = await api("/api/login", { method: "POST", body: { username, password },
        tokenValue: "" });
      this.loginForm.reset();
      this.accept(answer.access_token);
    } catch (err) {
      const reason = err instanceof HttpError && err.status === 401
        ? "Wrong user name or password."
        : err instanceof HttpError && err.status === 429
          ? "Too many failed logins: try again later."
          : `Login failed: ${err.message}`;
      this.setError(reason);
    } finally {
      this.busy(this.loginForm, false);
    }
  }

  accept(value) {
    this.dialog.close();
    token.set(value);
  }
}
