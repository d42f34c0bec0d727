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

// A signed act: the console's options make the act itself the challenge; the device signs it once (one
// touch for all the selected acts of a bulk decision); the proof goes with the form to the run, which
// checks it. Nothing here decides anything.
async function sign(form, event) {
  const picked = [...form.querySelectorAll("input[name=pick]:checked")];
  const needed = form.dataset.always === "1" || picked.some((box) => box.dataset.signed === "1");
  if (!needed) return;
  event.preventDefault();
  const status = form.querySelector(".status");
  status.textContent = "";
  const verdict = event.submitter.value;
  const csrf = form.querySelector("input[name=csrf]").value;
  const body = form.id === "bulk"
    ? {verdict, picks: picked.map((box) => JSON.parse(box.value))}
    : {verdict, action_digest: form.querySelector("input[name=action_digest]").value};
  try {
    const asked = await fetch(form.dataset.challenge, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body),
    });
    const answer = await asked.json();
    if (!asked.ok) throw new Error(answer.error);
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(answer.options);
    const credential = await navigator.credentials.get({publicKey});
    form.querySelector("input[name=passkey]").value = JSON.stringify(
      {assertion: credential.toJSON(), nonce: answer.nonce, acts: answer.acts});
    const chosen = form.querySelector("input[name=verdict][type=hidden]");
    chosen.value = verdict;
    chosen.disabled = false;
    form.submit();
  } catch (error) {
    status.textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-challenge]").forEach((form) => {
    form.addEventListener("submit", (event) => sign(form, event));
  });
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
