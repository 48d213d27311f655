"""The factual sections of a privacy impact assessment, read from the live workspace.

Each section is ``{"id", "title", "statements": [...], "tables": [{"head", "rows"}], "data"}``:
sentences and tables for people, and ``data`` (what the sentences were written from) for
machines and for :func:`fieldid.transparency.pia.compare`. Values under ``data["now"]`` move by
themselves (gallery size, what is overdue, the audit head) and are left out of the comparison
between versions.

Only what the workspace and the code hold is stated. Where something is absent (no evaluation,
no presentation-attack detection, no encryption at rest) the section
says so plainly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fieldid import __version__
from fieldid.access import PERMISSIONS, Role
from fieldid.config import CONFIG_NAME
from fieldid.errors import FieldidError
from fieldid.not_checked import PAD_OFFICER, PAD_TRIED
from fieldid.search.service import MIN_DOCUMENT_REASON
from fieldid.workspace import Workspace

Section = dict[str, Any]

#: fieldid.toml sections this version of the assessment describes; any other is shown verbatim.
DESCRIBED = {
    "use",
    "pipeline",
    "search",
    "index",
    "quality_gate",
    "enrollment",
    "intake",
    "adjudication",
    "retention",
    "receipt",
    "transparency",
    "location",
}

CLASS_TEXT = {
    "probe_images": ("the photo taken in the field, whatever the outcome", "capture"),
    "probe_templates": ("the face template computed from it", "capture"),
    "unidentified_searches": (
        "search records (candidate list, adjudications) that ended without an identification",
        "closing (or start, if never closed)",
    ),
    "confirmed_identifications": (
        "search records with a human-confirmed identification",
        "confirmation",
    ),
    "audit_entries": ("the audit log: every use, refusal and change", "the entry's time"),
    "exports": ("audit exports, redress exports and reports fieldid wrote", "writing"),
    "document_images": (
        "the photo of a presented document's data page and its chip data (both hold the "
        "holder's portrait); never held past the probe photo's period",
        "the encounter's end",
    ),
    "document_checks": (
        "records of document checks (fields, number as a keyed hash, check states, 1:1 result)",
        "the encounter's end",
    ),
}


def _section(
    sid: str,
    title: str,
    statements: list[str],
    data: dict[str, Any],
    tables: list[dict[str, Any]] | None = None,
) -> Section:
    return {
        "id": sid,
        "title": title,
        "statements": statements,
        "tables": tables or [],
        "data": data,
    }


def _table(head: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"head": head, "rows": rows}


def purposes(ws: Workspace) -> Section:
    cfg = ws.config
    notice = (
        "The web app and the API refuse a search unless the officer confirms the person was told "
        "that their photo is searched, why, and how to ask for redress (use.no_notice); the "
        "command line does not ask, and its searches are recorded without that confirmation."
        if cfg.notice_required
        else "Telling the person is not required ([use] notice_required = false): whether the "
        "officer says it was given is recorded with each search made through the web app or "
        "the API."
    )
    return _section(
        "purposes",
        "Purposes permitted",
        [
            "Every search and verification states one of these purposes; any other is refused "
            "before the photo is processed (use.purpose_not_permitted).",
            "Every use names an operator and a case reference; a use without either is refused "
            "(use.no_operator, use.no_case).",
            notice,
        ],
        {"permitted": list(cfg.purposes), "notice_required": cfg.notice_required},
        [_table(["purpose"], [[p] for p in cfg.purposes])],
    )


def data_classes(ws: Workspace) -> Section:
    from fieldid.retention.policy import MIN_AUDIT, RetentionPolicy
    from fieldid.retention.purge import SCHEDULE_INTERVAL_S

    policy = RetentionPolicy.load(ws.root)
    held = ws.retention.oldest_retained(policy)
    minutes = SCHEDULE_INTERVAL_S // 60
    purge = (
        "fieldid.retention.purge.purge: `fieldid purge` (role admin), and the server's scheduled "
        f"purge every {minutes} minutes while `fieldid serve` runs"
    )
    rows = []
    for cls, period in policy.texts.items():
        what, since = CLASS_TEXT.get(cls, (cls, "?"))
        how = purge
        if cls.startswith("probe_") and policy.purge_probe_at_adjudication:
            how += "; and at once when a search is closed unidentified (purge_probe)"
        if cls == "audit_entries":
            how += (
                f"; only a leading run of old entries goes, behind a recorded anchor; a period "
                f"under {MIN_AUDIT.days} days is refused when the policy is loaded"
            )
        if cls == "exports":
            how += "; files outside the workspace are listed in the purge entry, not deleted"
        rows.append([cls, what, period, since, how, "yes" if held[cls]["overdue"] else "no"])
    size = ws.gallery.size()
    statements = [
        "Each class below has a retention period in fieldid.toml [retention]; the code named "
        "enforces it and every purge is an audit entry with the classes and counts purged.",
        "The scheduled purge runs only inside the server. A workspace used only from the "
        "command line is purged when someone runs `fieldid purge`.",
        "The probe photo is stored exactly as received, including any metadata in the file "
        "(EXIF, GPS); the server does not strip it before the photo is purged.",
        "fieldid enforces no retention period on the gallery (enrolled people, their photos and "
        "templates), on identity records and their corrections, or on operator accounts: they are "
        "kept until removed. An enrolled person leaves the gallery only when merged into another "
        "(`fieldid person merge`); no other command removes one.",
        "Each enrolled photo is kept whole, as the face pipeline saw it (its decoded pixels, "
        "lossless, without the file's metadata), besides a small face crop shown with "
        "candidates, so that every template can be computed again for another face model "
        "(`fieldid gallery retemplate`); it is deleted with the enrolled image.",
    ]
    overdue = [cls for cls, v in held.items() if v["overdue"]]
    if overdue:
        statements.append(
            f"Now held past its period: {', '.join(overdue)} (a purge is due or has not run)."
        )
    return _section(
        "data_classes",
        "Data held, retention and how it is enforced",
        statements,
        {
            "retention": policy.to_dict(),
            "now": {
                "overdue": overdue,
                "gallery_persons": size.persons,
                "gallery_templates": size.templates,
            },
        },
        [
            _table(
                [
                    "data class",
                    "what",
                    "kept for",
                    "counted from",
                    "enforced by",
                    "held past its period now",
                ],
                rows,
            ),
            _table(
                ["not under a retention period", "held now"],
                [
                    ["people enrolled in the gallery", size.persons],
                    ["face templates in the gallery", size.templates],
                ],
            ),
        ],
    )


def record_sources(ws: Workspace) -> Section:
    from fieldid.records.sources import list_sources

    sources = list_sources(ws.store)
    rows = [
        [
            s.name,
            s.kind,
            s.authority,
            s.refresh,
            "never" if s.refreshed_at is None else s.refreshed_at.date().isoformat(),
            "yes" if s.synthetic else "no",
        ]
        for s in sources
    ]
    statements = [
        "Identity records are imported only from a registered source, which names the authority "
        "that owns and answers for them and how the copy here is refreshed. Each record keeps "
        "its source and date, and is shown with them."
    ]
    if not sources:
        statements.append(
            "No record source is registered: the gallery holds only what was enrolled directly, "
            "with no identity records."
        )
    return _section(
        "record_sources",
        "Record sources",
        statements,
        {
            "sources": {
                s.name: {
                    "kind": s.kind,
                    "authority": s.authority,
                    "refresh": s.refresh,
                    "synthetic": s.synthetic,
                }
                for s in sources
            },
            "now": {
                s.name: None if s.refreshed_at is None else s.refreshed_at.isoformat()
                for s in sources
            },
        },
        [_table(["source", "kind", "authority", "refresh", "last refreshed", "synthetic"], rows)]
        if rows
        else [],
    )


def access(ws: Workspace) -> Section:
    from fieldid.access.accounts import Accounts

    users = Accounts(ws.store, ws.clock).list_users()
    active = {r.value: 0 for r in Role}
    disabled = {r.value: 0 for r in Role}
    for u in users:
        (disabled if u.disabled else active)[u.role.value] += 1
    may = {r.value: sorted(a for a, roles in PERMISSIONS.items() if r in roles) for r in Role}
    rows = [
        [r, active[r], disabled[r], ", ".join(a.replace("_", " ") for a in may[r])] for r in may
    ]
    return _section(
        "access",
        "Who may do what",
        [
            "Every surface checks one permission table (fieldid.access.PERMISSIONS) before it "
            "acts; a refusal is audited.",
            "The web app and the API authenticate operators: argon2id password hashes, sessions "
            "that expire, API tokens scoped to actions, throttled logins.",
            "The command line authenticates against the same accounts: an API token or the "
            "operator's password; the role is the account's, never a name typed in. Commands "
            "that touch no gallery (evaluation on a dataset, documents on file) need no account.",
            "Access has a lifecycle: tokens are listed and revoked, accounts disabled, enabled "
            "and their passwords reset, each action audited; a disabled account's sessions and "
            "tokens stop working at once.",
        ],
        {"permissions": may, "active_operators": active, "disabled_operators": disabled},
        [_table(["role", "active operators", "disabled", "may"], rows)],
    )


def _threshold(ws: Workspace) -> tuple[list[str], dict[str, Any]]:
    from fieldid.calibration import load_for, threshold_in_force

    cfg = ws.config
    model = str(ws.pipeline.model)
    n = ws.gallery.size().templates
    data: dict[str, Any] = {
        "fixed_threshold": cfg.threshold,
        "target_fpir": None if cfg.threshold is not None else cfg.target_fpir,
        "verify_target_fmr": None if cfg.threshold is not None else cfg.verify_target_fmr,
        "top_k": cfg.top_k,
        "now": {"gallery_templates": n},
    }
    try:
        tif = threshold_in_force(
            configured=cfg.threshold,
            target_fpir=cfg.target_fpir,
            calibration=load_for(ws.root, model),
            model=model,
            gallery_size=n,
        )
    except FieldidError as e:
        data["now"]["threshold"] = None
        return [
            "No threshold can be set: the model has no calibration and no fixed threshold is "
            f"configured, so every search is refused ({e.code})."
        ], data
    data["now"]["threshold"] = round(tif.value, 4)
    if cfg.threshold is not None:
        est = "" if tif.fpir is None else f" (estimated FPIR at this gallery size: {tif.fpir:.2g})"
        text = [
            f"Candidates are listed at or above a fixed similarity threshold of {cfg.threshold}, "
            f"set in fieldid.toml [search] threshold{est}. A fixed threshold does not follow the "
            "gallery's size: the chance of a stranger being listed grows as the gallery grows.",
            "1:1 verifications use the same fixed threshold.",
        ]
    else:
        text = [
            f"The threshold is recomputed for every search so that a search of someone who is "
            f"not enrolled lists any candidate with probability {cfg.target_fpir:g} (target "
            f"FPIR, [search] target_fpir), from the model's calibration, the gallery's size at "
            f"that moment and the probe's quality. At today's {n:,} templates it is "
            f"{tif.value:.4f}.",
            f"1:1 verifications are above threshold at a false match rate of "
            f"{cfg.verify_target_fmr:g} per comparison ([search] verify_target_fmr).",
        ]
    return text, data


def presentation(ws: Workspace) -> Section:
    from fieldid.adjudication.rules import AdjudicationRules
    from fieldid.adjudication.service import MIN_OVERRIDE_REASON
    from fieldid.candidate import LEAD_NOTICE

    cfg = ws.config
    rules = AdjudicationRules.load(ws.root)
    threshold_text, data = _threshold(ws)
    two = sorted(rules.two_person_purposes)
    statements = [
        f'Every candidate list carries the notice "{LEAD_NOTICE}". Each candidate carries '
        "its score, the false-positive rate that score means at the current gallery "
        "size, and the probe's quality; each candidate's records are shown with their source "
        "and date.",
        *threshold_text,
        f"At most {cfg.top_k} candidates are listed ([search] top_k). A list of the top entries "
        "whatever their score (an investigation list) needs the supervisor role and is labelled "
        "as such.",
        f"A probe below the quality gate (overall quality under {cfg.gate.min_unified}/100, or "
        "failing a single measure) is refused with guidance, and the refusal is recorded; it is "
        "never described as a search result.",
        "Identified exists only as a human adjudication record: a person with the adjudicate "
        "permission confirms one candidate, with a written reason. Officers decide only their "
        "own searches.",
        "No one may confirm a candidate scoring below "
        + (
            f"{rules.min_confirm_score} ([adjudication] min_confirm_score)"
            if rules.min_confirm_score is not None
            else "the search's own threshold"
        )
        + "; this binds supervisors too.",
        "Documents the person presents are recorded with the search (numbers hashed) and "
        "compared with each candidate's records; a conflict blocks the confirmation, which only "
        f"a different supervisor can lift, with a reason of at least {MIN_OVERRIDE_REASON} "
        "characters.",
        (
            f"Two-person rule: a confirmation for {', '.join(two)} waits for a second, different "
            "supervisor ([adjudication] two_person_purposes)."
            if two
            else "No purpose is under the two-person rule ([adjudication] two_person_purposes "
            "is empty): one person's confirmation is final."
        ),
    ]
    statements.append(
        "Documents first: the field app asks whether the person has an identity document "
        "before any 1:N search. A document checked (MRZ check digits, or the chip by passive "
        "authentication), not expired, whose portrait matches the face 1:1 at the configured "
        "false-match rate settles the encounter with no gallery search, and the receipt says "
        "so. A 1:N search after such a document is refused unless the officer writes why it "
        f"is not enough (at least {MIN_DOCUMENT_REASON} characters, audited). A 1:N search "
        "without any document check remains possible (no document, or the API used without "
        "one); the oversight report counts each case."
    )
    doc = {k: v for k, v in _config(ws).items() if "document" in k}
    if doc:
        statements.append(
            "Document rules in the configuration: "
            + "; ".join(f"[{k}] {toml_inline(v)}" for k, v in sorted(doc.items()))
            + "."
        )
    else:
        statements.append("The configuration holds no further document rule.")
    other = {k: v for k, v in _config(ws).items() if k not in DESCRIBED and k not in doc}
    for k, v in sorted(other.items()):
        statements.append(
            f"Further settings in force, not described by this version of the assessment: "
            f"[{k}] {toml_inline(v)}."
        )
    data.update(
        {
            "lead_notice": LEAD_NOTICE,
            "min_unified_quality": cfg.gate.min_unified,
            "min_confirm_score": rules.min_confirm_score,
            "two_person_purposes": two,
            "min_override_reason": MIN_OVERRIDE_REASON,
            "document_rules": doc,
            "other_settings": other,
        }
    )
    return _section("presentation", "How results are presented and decided", statements, data)


def _config(ws: Workspace) -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ws.root / CONFIG_NAME).read_text(encoding="utf-8"))


def toml_inline(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} = {toml_inline(x)}" for k, x in v.items())
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(toml_inline(x) for x in v) + "]"
    return str(v)


def accuracy(ws: Workspace, threshold_now: float | None) -> Section:
    from fieldid.transparency import evaluation

    ev = evaluation.summary(ws)
    model = str(ws.pipeline.model)
    if not ev["available"]:
        return _section(
            "accuracy",
            "Measured accuracy",
            [
                "None was measured: no evaluation is recorded for this workspace "
                "(W/evaluation/latest.json is absent). The accuracy of this system as configured "
                "is unknown until `fieldid eval --workspace W --dataset LABELLED_FACES` is run."
            ],
            {"evaluated": False},
        )
    statements = [
        f"Latest evaluation {ev['at']}: model {ev['model']} on the labelled set {ev['dataset']} "
        f"({ev['images']} images of {ev['identities']} people), at the threshold searches "
        "used then."
    ]
    if ev["model"] != model:
        statements.append(
            f"That evaluation measured {ev['model']}, not the model in use now ({model}): it "
            "does not describe this system's accuracy. Run `fieldid eval --workspace W` again."
        )
    thr = ev["threshold"]
    if (
        threshold_now is not None
        and isinstance(thr, int | float)
        and abs(thr - threshold_now) > 1e-3
    ):
        statements.append(
            f"It was measured at threshold {thr:.4f}; searches use {threshold_now:.4f} now (the "
            "gallery or the configuration has changed since)."
        )
    statements += evaluation.statements(ev)
    tables = [_table(["measure", "value"], evaluation.rate_rows(ev))]
    if ev["groups"]:
        tables.append(_table(evaluation.GROUP_HEAD, evaluation.group_rows(ev)))
    cal = ev["calibration"]
    return _section(
        "accuracy",
        "Measured accuracy",
        statements,
        {
            "evaluated": True,
            "at": ev["at"],
            "model": ev["model"],
            "dataset": ev["dataset"],
            "operating_point": {k: ev[k] for k in ("threshold", "fmr", "fnmr", "fpir", "fnir")},
            "groups_measured": bool(ev["groups"]),
            "calibration_drifted": None if cal is None else cal["drifted"],
        },
        tables,
    )


def presentation_attack(ws: Workspace) -> Section:
    cfg = _config(ws)
    pad = {k: v for k, v in cfg.items() if any(w in k for w in ("presentation", "pad", "liveness"))}
    statements = [
        "There is no presentation-attack detection that can be trusted. fieldid does not check "
        "that the face in front of the camera is a live person: a printed photo, a photo on a "
        "screen or a mask is processed like a face. No presentation-attack error rates (APCER, "
        "BPCER) have been measured.",
        PAD_TRIED,
        PAD_OFFICER,
    ]
    for k, v in sorted(pad.items()):
        statements.append(
            f"The configuration holds [{k}] {toml_inline(v)}; no error rates for it are measured."
        )
    return _section(
        "presentation_attack",
        "Presentation-attack detection",
        statements,
        {"trusted_detection": False, "settings": pad},
    )


def security(ws: Workspace) -> Section:
    from fieldid.audit.export import key_id, signing_public_key
    from fieldid.audit.verify import verify_log
    from fieldid.store.keys import SEALED, facts

    chain = verify_log(ws.store)
    public = signing_public_key(ws.store)
    kid = None if public is None else key_id(public)
    sealed = [f"{c.what} ({c.label})" for c in SEALED]
    kek_kind = str(((facts(ws.store) or {}).get("source") or {}).get("kind", "other"))
    kek_from = {  # the kind of source only: where the key is kept is not published
        "file": "a key file",
        "env": "an environment variable",
        "command": "a command, such as a KMS or HSM client",
    }.get(kek_kind, "a source the agency configured")
    index_backend = ws.config.index.backend
    exports = [
        e for e in ws.store.audit_entries("export") if (e.payload or {}).get("kind") == "audit"
    ]
    statements = [
        "Audit log: every use, refusal, adjudication, purge and configuration change is an "
        "entry in a hash chain (each entry's SHA-256 covers the one before). It is "
        "tamper-evident to anyone who cannot rewrite the whole log; an earlier signed export "
        "held by someone else catches a rewrite (`fieldid audit verify-export`).",
        (
            f"The chain verifies now: {chain.checked} entries, seq {chain.start_seq} to "
            f"{chain.head_seq}."
            if chain.ok
            else f"The chain does NOT verify now: {chain.message}."
        ),
        "Exports are signed: audit exports, this assessment and the transparency report carry "
        "an Ed25519 signature by the workspace's export key"
        + (f" (key id {kid})" if kid else "")
        + f"; {len(exports)} audit export(s) are recorded in the log. The private key is kept "
        "in the workspace's keyring, wrapped by the key-encryption key held outside the "
        "workspace: a copy of the workspace without that key cannot sign.",
        "Encryption at rest: biometric data is sealed (AES-256-GCM under a data key per value, "
        f"wrapped by a key-encryption key held outside the workspace: {kek_from}): "
        + "; ".join(sealed)
        + ". `fieldid keys check` proves every value opens; `fieldid keys rotate` re-wraps the "
        "data keys under a new key. "
        + (
            "The vector index's files (faiss-local) are sealed too."
            if index_backend == "faiss-local"
            else f"The vector index ({index_backend}) holds the templates in the clear on its "
            "own server: its storage must be encrypted by its operator."
        )
        + " Names, records and search metadata are not encrypted: they are protected by the "
        "workspace's file permissions (folders 0700, files 0600) and the database's access "
        "control.",
        "Secrets stored as digests: passwords as argon2id hashes, API tokens and session ids as "
        "SHA-256, document numbers as HMAC-SHA256 with a key kept in the keyring (wrapped by the "
        "key-encryption key).",
        "In transit: `fieldid serve` speaks plain HTTP; beyond localhost it must sit behind a "
        "TLS proxy.",
    ]
    return _section(
        "security",
        "Security measures",
        statements,
        {
            "encryption_at_rest": True,
            "sealed": [c.label for c in SEALED],
            "key_encryption_key": ws.keys.kek_id,
            "index_sealed": index_backend == "faiss-local",
            "audit_chain": "hash chain (SHA-256)",
            "export_signatures": "Ed25519",
            "signing_key_id": kid,
            "now": {
                "chain_ok": chain.ok,
                "entries": chain.checked,
                "head_seq": chain.head_seq,
                "audit_exports": len(exports),
            },
        },
    )


def face_model(ws: Workspace) -> Section:
    from fieldid.calibration import load_for

    spec = ws.config.pipeline
    model = ws.pipeline.model
    cal = load_for(ws.root, str(model))
    embedder = spec.embedder + (
        f" ({Path(spec.onnx_path).name})" if spec.embedder == "onnx" and spec.onnx_path else ""
    )
    statements = [
        f"Face model {model.id}, version {model.version} (embedder {embedder}); face detector "
        f"{spec.detector}"
        + (f", falling back to {spec.fallback_detector}" if spec.fallback_detector else "")
        + ". Templates made by another model are never compared with these.",
        (
            f"Calibration: {cal.describe()}."
            if cal is not None
            else "The model has no calibration: scores cannot be stated as rates."
        ),
        f"fieldid {__version__}.",
    ]
    return _section(
        "face_model",
        "Face model",
        statements,
        {
            "model": str(model),
            "embedder": embedder,
            "detector": spec.detector,
            "fallback_detector": spec.fallback_detector,
            "calibration": None if cal is None else cal.id,
            "fieldid": __version__,
        },
    )


def location(ws: Workspace) -> Section:
    """``[location]``: whether searches carry a location, how coarse, the sensitive areas and
    their rules, and the approvals given and refused."""
    from fieldid.location.areas import list_areas
    from fieldid.location.config import KIND_TEXT, KINDS

    lc = ws.location
    now = ws.clock.now()
    with ws.store.read() as s:
        areas = list_areas(s)
    active = [a for a in areas if a.active(now)]
    decided = [e.payload or {} for e in ws.store.audit_entries("location_approval")]
    if not lc.enabled:
        statements = [
            "Location is off ([location] enabled = false): the field app does not ask the phone "
            "for its location, a location sent to the API is ignored, and no search records where "
            "it happened. Sensitive-area rules therefore stop no search.",
        ]
    else:
        statements = [
            "Location is on: with each photo taken for a search (never with the guidance frames) "
            "the field app asks the phone for its position and rounds it on the phone to the "
            f"nearest multiple of {lc.cell_size_text()}; only that cell is sent. The server "
            "refuses a position that is not on this grid (it is never rounded or kept there) "
            "and stores the cell with the search and in its audit entry.",
            (
                "A search without a location is refused (location.missing)."
                if lc.required
                else "A search without a location runs, recorded as having none: "
                "sensitive-area rules cannot apply to it."
            ),
            "Sensitive areas: a search whose cell intersects an area in force is "
            + "; ".join(
                ("refused" if lc.rules[k] == "refuse" else "held for a supervisor’s prior approval")
                + f" for {KIND_TEXT[k]}"
                for k in KINDS
            )
            + f". An approval is given with a written reason by a supervisor other than the "
            f"officer, for one search in that case and area, within {lc.approval_minutes} minutes; "
            "every request, approval and refusal is audited.",
        ]
    statements.append(
        f"{len(active)} sensitive area(s) are in force now"
        + (
            " (" + ", ".join(f"{sum(1 for a in active if a.kind == k)} {k}" for k in KINDS) + ")"
            if active
            else ""
        )
        + f"; {sum(1 for d in decided if d.get('decision') == 'approve')} approval(s) and "
        f"{sum(1 for d in decided if d.get('decision') == 'deny')} refusal(s) by supervisors "
        "are recorded. The transparency report counts searches per area and per cell of "
        f"{lc.report_grid_deg:g}°, small cells suppressed."
    )
    return _section(
        "location",
        "Where searches happen (location)",
        statements,
        {
            **lc.to_dict(),
            "areas": sorted(f"{a.kind}: {a.name}" for a in areas),
            "now": {
                "areas_in_force": len(active),
                "approvals": sum(1 for d in decided if d.get("decision") == "approve"),
                "refusals": sum(1 for d in decided if d.get("decision") == "deny"),
            },
        },
        [
            _table(
                ["kind", "rule", "areas in force"],
                [[k, lc.rules[k], sum(1 for a in active if a.kind == k)] for k in KINDS],
            )
        ],
    )


def collect(ws: Workspace) -> list[Section]:
    """Every factual section, in the order the assessment shows them."""
    pres = presentation(ws)
    return [
        purposes(ws),
        data_classes(ws),
        record_sources(ws),
        access(ws),
        pres,
        accuracy(ws, pres["data"]["now"].get("threshold")),
        presentation_attack(ws),
        security(ws),
        face_model(ws),
        location(ws),
    ]
