"""verify.py: re-verify a govflow evidence bundle offline, with the Python standard library and `cryptography`.

    python verify.py [BUNDLE.json] [--public-key BASE64]

It checks, and prints, each of:

1. the bundle's signature (``BUNDLE.sig.json``): Ed25519 over the bundle file's exact bytes, by the key it
   names (compare its fingerprint with the one your organisation publishes, or pass ``--public-key``);
   it covers every byte of the bundle: headers, summaries, ``recorded_at``, the verification results;
2. every chain: each event's ``hash`` is sha256 of the RFC 8785 canonical JSON of
   ``{stream, stream_id, seq, kind, occurred_at, payload, prev_hash}``, ``prev_hash`` links to the event
   before (64 zeros for seq 1), sequence numbers start at 1 without gaps;
3. the checkpoint the bundle was cut from: signed by the same key, and each head it names is the last
   event of its chain in the bundle;
4. the policies: each policy's text hashes (sha256 of its UTF-8 bytes) to its digest, and every run's
   ``run_started.policy_digest`` is one of them;
5. the signatures of human acts, against the public keys of the policy each run decided under: the
   requester's submit (``run_started.submit_signature`` over ``submit_message``) and each signed vote
   (``approval_attempt.signature`` over the RFC 8785 JSON of ``{"purpose": "govflow-approval-v1",
   "run_id", "action_digest", "verdict"}``). Passkey-signed votes (WebAuthn) are listed, not re-checked
   here: `govflow evidence verify` re-checks them against the reviewer's enrolled key.

Exit 0 when everything holds; 1, naming each problem, otherwise. Nothing here imports govflow.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64


def jcs(value: Any) -> str:
    """RFC 8785 (JSON Canonicalization Scheme) text of a JSON value."""
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(value[k]) for k in keys) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _number(x: float) -> str:
    """ECMAScript's Number.prototype.toString, which RFC 8785 prescribes for numbers."""
    if not math.isfinite(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    sign, x = ("-", -x) if x < 0 else ("", x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)  # the value is 0.<whole+frac> * 10**point
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    tail = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + tail


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ed25519_ok(public_b64: str, signature_b64: str, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), message)
        return True
    except (InvalidSignature, ValueError):
        return False


def fingerprint(public_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


def chains(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chain the bundle holds: its subject, a rollout's runs, the policies."""
    found = [bundle, *bundle.get("runs", []), *bundle.get("policy_chains", [])]
    return [c for c in found if "events" in c]


def check_chain(chain: dict[str, Any]) -> list[str]:
    stream, stream_id = chain["stream"], chain["stream_id"]
    problems: list[str] = []
    prev = GENESIS
    for n, e in enumerate(chain["events"], start=1):
        where = f"{stream} {stream_id} event {e.get('seq')}"
        if e["seq"] != n:
            problems.append(f"{where}: expected seq {n}")
        if e["prev_hash"] != prev:
            problems.append(f"{where}: prev_hash does not link to the event before")
        body = {"stream": stream, "stream_id": stream_id, "seq": e["seq"], "kind": e["kind"],
                "occurred_at": e["occurred_at"], "payload": e["payload"], "prev_hash": e["prev_hash"]}  # fmt: skip
        if sha256(jcs(body)) != e["hash"]:
            problems.append(f"{where}: hash does not match its content (edited)")
        prev = e["hash"]
    return problems


def check_checkpoint(bundle: dict[str, Any], signer: str | None) -> list[str]:
    signed = bundle.get("checkpoint")
    if not signed:
        return ["no checkpoint in the bundle"]
    problems = []
    if signer is not None and signed["public_key"] != signer:
        problems.append(f"the checkpoint is signed by key {fingerprint(signed['public_key'])}, not the bundle's")
    if not ed25519_ok(signed["public_key"], signed["signature"], jcs(signed["checkpoint"]).encode()):
        problems.append("the checkpoint's signature does not match its content")
    last = {(c["stream"], c["stream_id"]): c["events"][-1] for c in chains(bundle) if c["events"]}
    for head in signed["checkpoint"]["heads"]:
        event = last.get((head["stream"], head["stream_id"]))
        if event is None or (event["seq"], event["hash"]) != (head["seq"], head["hash"]):
            problems.append(f"checkpoint head {head['stream']} {head['stream_id']} {head['seq']} is not the bundle's")
    return problems


def policies(bundle: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each recorded policy by digest (its text parsed), and what does not hold."""
    found, problems = {}, []
    for chain in bundle.get("policy_chains", []):
        recorded = chain["events"][0]["payload"]
        if sha256(recorded["text"]) != chain["stream_id"]:
            problems.append(f"policy {chain['stream_id'][:12]}: its text does not hash to its digest")
        found[chain["stream_id"]] = json.loads(recorded["text"])
    return found, problems


def check_acts(bundle: dict[str, Any], by_digest: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Submit and vote signatures against the keys of each run's policy: (what was checked, problems)."""
    checked: list[str] = []
    problems: list[str] = []
    for run in [c for c in chains(bundle) if c["stream"] == "run"]:
        events = run["events"]
        started = next((e["payload"] for e in events if e["kind"] == "run_started"), None)
        if started is None:
            continue
        policy = by_digest.get(str(started.get("policy_digest")))
        if policy is None:
            problems.append(f"run {run['stream_id']}: its policy {str(started.get('policy_digest'))[:12]} is not in "
                            "the bundle")  # fmt: skip
            continue
        keys = {p["id"]: p.get("public_key") for p in policy.get("reviewers", {}).get("people", [])}
        if started.get("submit_signature"):
            who = started["requester"]
            ok = ed25519_ok(keys.get(who) or "", started["submit_signature"], started["submit_message"].encode())
            fields = json.loads(started["submit_message"]) if ok else {}
            if ok and (fields.get("subject"), fields.get("requester")) != (run["stream_id"], who):
                ok = False
            (checked if ok else problems).append(f"run {run['stream_id']}: submit signed by {who}"
                                                 + ("" if ok else ": does NOT verify"))  # fmt: skip
        for e in events:
            vote = e["payload"]
            if e["kind"] != "approval_attempt" or not vote.get("signature") or vote.get("passkey"):
                continue
            message = {"purpose": "govflow-approval-v1", "run_id": run["stream_id"],
                       "action_digest": vote["action_digest"], "verdict": vote["verdict"]}  # fmt: skip
            ok = ed25519_ok(keys.get(vote["reviewer"]) or "", vote["signature"], jcs(message).encode())
            line = f"run {run['stream_id']} event {e['seq']}: {vote['reviewer']}'s {vote['verdict']} signed"
            if vote["accepted"] and not ok:
                problems.append(line + ": does NOT verify, yet it was accepted")
            elif ok:
                checked.append(line)
    return checked, problems


def main() -> int:
    parser = argparse.ArgumentParser(description="Re-verify a govflow evidence bundle offline.")
    default = next(iter(sorted(p for p in Path(__file__).parent.glob("*.json") if not p.name.endswith(".sig.json"))),
                   None)  # fmt: skip
    parser.add_argument("bundle", nargs="?", default=default, help="the bundle's JSON file (default: the one here)")
    parser.add_argument("--public-key", help="the key the bundle must be signed by (base64): trust no other")
    args = parser.parse_args()
    if args.bundle is None:
        print("no bundle JSON file here: name it")
        return 1
    path = Path(args.bundle)
    raw = path.read_bytes()
    problems: list[str] = []
    sig_path = path.with_name(path.stem + ".sig.json")
    signer = None
    if not sig_path.is_file():
        problems.append(f"{sig_path.name} is missing: the bundle is not signed, so edits outside the chains go unseen")
    else:
        sig = json.loads(sig_path.read_text())
        signer = sig["public_key"]
        if args.public_key and args.public_key != signer:
            trusted = fingerprint(args.public_key)
            problems.append(f"signed by key {fingerprint(signer)}, not by the key you trust ({trusted})")
        if hashlib.sha256(raw).hexdigest() != sig["sha256"] or not ed25519_ok(signer, sig["signature"], raw):
            problems.append(f"the signature in {sig_path.name} does not match {path.name}: the bundle was edited")
        else:
            print(f"ok  {path.name} signed as a whole by key {fingerprint(signer)}")
    bundle = json.loads(raw)
    found = chains(bundle)
    for chain in found:
        problems += check_chain(chain)
    print(f"ok  {len(found)} chains, {sum(len(c['events']) for c in found)} events: hashes and links recomputed"
          if not any("hash" in p or "seq" in p or "prev_hash" in p for p in problems) else "BAD chains")  # fmt: skip
    problems += check_checkpoint(bundle, signer)
    by_digest, policy_problems = policies(bundle)
    problems += policy_problems
    print(f"ok  {len(by_digest)} policies: each text hashes to its digest" if not policy_problems else "BAD policies")
    checked, act_problems = check_acts(bundle, by_digest)
    problems += act_problems
    print(f"ok  {len(checked)} signed acts verify with the keys of the policy in force")
    if problems:
        print(f"\nDOES NOT VERIFY: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nThe bundle verifies.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
