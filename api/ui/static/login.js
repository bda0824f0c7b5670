// Sign-in: the token is asked for once and sent to ./login in a POST body; fleetd keeps it
// in an HttpOnly cookie (the page never stores it and it never appears in a URL).

import { signIn } from "./api.js";
import { fill, h } from "./dom.js";

/** Show the sign-in form in `main`; resolves with the session once signed in. */
export function askToken(main, why) {
  return new Promise((resolve) => {
    const input = h("input", {
      id: "token",
      name: "token",
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "token-help",
    });
    const error = h("p", { id: "login-error", class: "error", role: "alert" });
    const button = h("button", { type: "submit", class: "primary" }, "Sign in");
    const form = h(
      "form",
      { class: "login", "aria-labelledby": "login-title" },
      h("h1", { id: "login-title" }, "Sign in to fleetd"),
      h("label", { for: "token" }, "API token"),
      input,
      h(
        "p",
        { id: "token-help", class: "help" },
        "A token of this cluster (",
        h("code", {}, "fleetd token add"),
        "). Its role decides what you may change. It is kept in this browser for a week, " +
          "for this page only, until you sign out.",
      ),
      error,
      button,
    );
    if (why) error.textContent = why;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      error.textContent = "";
      try {
        const session = await signIn(input.value);
        input.value = "";
        resolve(session);
      } catch (err) {
        error.textContent = `Not signed in: ${err.message}`;
        input.select();
      } finally {
        button.disabled = false;
      }
    });
    fill(main, form);
    input.focus();
  });
}
