// The passkey ceremonies: ask the console for options, let the browser create or use the passkey, send
// the answer back. The console verifies it; this script decides nothing.
"use strict";

async function ceremony(base, kind) {
  const status = document.getElementById("status");
  status.textContent = "";
  try {
    const asked = await fetch(base + "/options", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: "{}", credentials: "same-origin",
    });
    const options = await asked.json();
    if (!asked.ok) throw new Error(options.error);
    const publicKey = kind === "create"
      ? PublicKeyCredential.parseCreationOptionsFromJSON(options)
      : PublicKeyCredential.parseRequestOptionsFromJSON(options);
    const credential = await navigator.credentials[kind]({publicKey});
    const sent = await fetch(base + "/verify", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(credential.toJSON()), credentials: "same-origin",
    });
    const answer = await sent.json();
    if (!sent.ok) throw new Error(answer.error);
    window.location.assign(answer.redirect);
  } catch (error) {
    status.textContent = error.message;
  }
}

// The inbox keeps itself current: its rows again every second, so what arrives or leaves shows. What the
// reviewer has selected stays selected (while it still waits).
async function refresh(table) {
  try {
    const answer = await fetch(table.dataset.refresh, {credentials: "same-origin"});
    if (answer.ok) {
      const rows = await answer.text();
      const body = table.querySelector("tbody");
      const picked = new Set([...body.querySelectorAll("input[name=pick]:checked")].map((box) => box.value));
      const fresh = document.createElement("table");
      fresh.innerHTML = rows;
      const next = fresh.querySelector("tbody");
      next.querySelectorAll("input[name=pick]").forEach((box) => { box.checked = picked.has(box.value); });
      if (body.innerHTML.trim() !== next.innerHTML.trim()) body.replaceWith(next);
    }
  } finally {
    setTimeout(() => refresh(table), 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("passkey");
  if (button) button.addEventListener("click", () => ceremony(button.dataset.base, button.dataset.kind));
  const table = document.getElementById("inbox");
  if (table) setTimeout(() => refresh(table), 1000);
  const all = document.getElementById("pick-all");
  if (all) {
    all.addEventListener("change", () => {
      table.querySelectorAll("input[name=pick]").forEach((box) => { box.checked = all.checked; });
    });
  }
});
